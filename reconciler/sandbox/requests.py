"""What a request to the sandbox is, read off the wire as AWS reads it: its service and account (SigV4's credential
scope), its operation (the query's Action, JSON's X-Amz-Target, or a REST path), whether it only reads, an
anonymous S3 read, and the error code of an answer."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


S3_SUBRESOURCES = {"tagging": "BucketTagging", "policy": "BucketPolicy", "publicAccessBlock": "PublicAccessBlock",
                    "versioning": "BucketVersioning", "acl": "BucketAcl", "location": "BucketLocation",
                    "ownershipControls": "BucketOwnershipControls", "encryption": "BucketEncryption"}


READ_PREFIXES = ("Describe", "List", "Get", "BatchGet", "Query", "Scan", "Head", "Lookup")


SCOPE = re.compile(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/aws4_request")


KEY_AND_REGION = re.compile(r"Credential=([^/]+)/\d+/([^/]+)/")


def is_read(operation: str) -> bool:
    """True for operations that only read (Describe*, List*, Get*, GET/HEAD on REST APIs)."""
    return operation.startswith(READ_PREFIXES) or operation.split(" ", 1)[0] in ("GET", "HEAD")


def service_of(environ: Environ) -> str:
    match = SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else "unknown"


def operation_of(environ: Environ, body: bytes) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in query:
        return query["Action"][0]
    content_type = environ.get("CONTENT_TYPE", "")
    if body and "x-www-form-urlencoded" in content_type:
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return action[0]
    return rest_operation(service_of(environ), environ.get("REQUEST_METHOD", "GET"),
                           environ.get("PATH_INFO", "/"), parse_qs(environ.get("QUERY_STRING", ""),
                                                                   keep_blank_values=True))


VERB = {"GET": "Get", "PUT": "Put", "DELETE": "Delete", "HEAD": "Head", "POST": "Post"}


CLOUDFRONT = {
    ("GET", "distribution"): "ListDistributions", ("POST", "distribution"): "CreateDistribution",
    ("GET", "distribution/*"): "GetDistribution", ("DELETE", "distribution/*"): "DeleteDistribution",
    ("GET", "distribution/*/config"): "GetDistributionConfig", ("PUT", "distribution/*/config"): "UpdateDistribution",
    ("POST", "distribution/*/invalidation"): "CreateInvalidation",
    ("GET", "distribution/*/invalidation"): "ListInvalidations",
    ("GET", "distribution/*/invalidation/*"): "GetInvalidation",
    ("GET", "tagging"): "ListTagsForResource",
    ("GET", "origin-access-control"): "ListOriginAccessControls",
    ("POST", "origin-access-control"): "CreateOriginAccessControl",
    ("GET", "origin-access-control/*"): "GetOriginAccessControl",
    ("DELETE", "origin-access-control/*"): "DeleteOriginAccessControl",
    ("GET", "origin-access-control/*/config"): "GetOriginAccessControlConfig",
    ("PUT", "origin-access-control/*/config"): "UpdateOriginAccessControl",
}


def rest_operation(service: str, method: str, path: str, query: dict[str, list[str]]) -> str:
    """The API operation of a REST request (S3, CloudFront), as AWS names it."""
    if service == "s3":
        _bucket, _, key = path.strip("/").partition("/")
        sub = next((S3_SUBRESOURCES[q] for q in query if q in S3_SUBRESOURCES), None)
        if key:
            if "uploads" in query:
                return "CreateMultipartUpload"
            if "uploadId" in query:
                return {"PUT": "UploadPart", "POST": "CompleteMultipartUpload",
                        "DELETE": "AbortMultipartUpload"}.get(method, "ListParts")
            return {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject",
                    "DELETE": "DeleteObject"}.get(method, f"{method} object")
        if sub:
            return f"{VERB.get(method, method)}{sub}"
        if method == "GET":
            return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        return {"HEAD": "HeadBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}.get(method, f"{method} bucket")
    if service == "cloudfront":
        parts = path.strip("/").split("/")[1:]  # drop the API version
        shape = "/".join(p if i % 2 == 0 else "*" for i, p in enumerate(parts))
        if shape == "tagging" and method == "POST":
            return {"Tag": "TagResource", "Untag": "UntagResource"}.get(query.get("Operation", [""])[0], "POST tagging")
        if shape == "distribution" and method == "POST" and "WithTags" in query:
            return "CreateDistributionWithTags"
        return CLOUDFRONT.get((method, shape), f"{method} {shape}")
    return f"{method} {path}"


def anonymous_read(environ: Environ) -> tuple[str, str] | None:
    """(bucket, key) of an unsigned GET or HEAD of an object (path style: /bucket/key); None for anything else."""

    if environ.get("HTTP_AUTHORIZATION") or "X-Amz-Signature" in environ.get("QUERY_STRING", ""):
        return None
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return None
    bucket, _, key = unquote(environ.get("PATH_INFO", "")).lstrip("/").partition("/")
    if not bucket or not key or bucket.startswith("_") or bucket == "moto-api":
        return None
    return bucket, key


def anonymous_refusal(environ: Environ, bucket: str, key: str) -> Callable[[StartResponse], list[bytes]] | None:
    """The 403 S3 answers an anonymous read the bucket does not allow to everyone (s3.py, "anonymous reads");
    None when it allows it."""
    from reconciler.sandbox.s3 import anonymous_read_refusal

    reason = anonymous_read_refusal(bucket, key)
    if reason is None:
        return None
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>{reason}</Message>'
            f"<Resource>/{bucket}/{key}</Resource></Error>").encode()

    def answer(start_response: StartResponse) -> list[bytes]:
        start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        return [body] if environ.get("REQUEST_METHOD") == "GET" else []
    return answer


XML_CODE = re.compile(rb"<Code>([^<]+)</Code>")


JSON_TYPE = re.compile(rb'"__type"\s*:\s*"(?:[^"#]*#)?([^"]+)"')


def error_code(body: bytes) -> str:
    """The AWS error code of an error answer (JSON `__type` or XML `<Code>`)."""
    match = JSON_TYPE.search(body) or XML_CODE.search(body)
    return match.group(1).decode() if match else "Unknown"
