"""The sandbox refuses what AWS refuses, before moto sees the request (moto takes almost any name, tag and policy):

- every constraint botocore's model states for a request of a JSON or query service (DynamoDB, ElastiCache, EC2,
  STS, SQS...): lengths, patterns, enums, ranges, required members (apimodel.py), answered as AWS's request
  validation answers (ValidationException; InvalidParameterValue for ElastiCache and EC2);
- the rules AWS documents beyond the model (constraints.py, each cited there and in docs/sandbox.md): table and
  index names, bucket names, replication group ids, each service's tag rules (characters, lengths, the reserved
  aws: prefix, 50 a resource, counting the tags it has already), bucket policies (MalformedPolicy), a distribution's
  comment.

S3's defaults for a new bucket (Block Public Access on, tags taken at CreateBucket) are in s3.py.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, unquote

from reconciler.aws import apimodel, constraints

Environ = dict[str, Any]
# The signing name of a request (its credential scope) -> botocore's service name, where they differ.
_SERVICE = {"tagging": "resourcegroupstaggingapi", "monitoring": "cloudwatch", "email": "ses"}
# What a query service answers for a value its validation refuses.
_QUERY_CODE = {"elasticache": "InvalidParameterValue", "ec2": "InvalidParameterValue"}


class Refused(Exception):
    """A request the sandbox answers with AWS's error instead of passing it on."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def check(signing_name: str, operation: str, environ: Environ, body: bytes, account: str, region: str) -> None:
    """Raise Refused when AWS would refuse this request; return quietly otherwise (or when it cannot tell)."""
    service = _SERVICE.get(signing_name, signing_name)
    handler = _SERVICE_RULES.get(service)
    if handler is not None:
        handler(operation, environ, body, account, region)
    _model_check(service, operation, environ, body)


def _model_check(service: str, operation: str, environ: Environ, body: bytes) -> None:
    try:
        model = apimodel.service_model(service)
        model.operation_model(operation)
    except Exception:  # not a service or operation botocore knows (the sandbox's own, a REST verb): not checked
        return
    if model.protocol == "json":
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            return
    elif model.protocol in ("query", "ec2"):
        params = apimodel.from_query(service, operation, _form(environ, body))
    else:
        return  # REST services (S3, CloudFront): their rules are checked one by one above
    found = apimodel.violations(service, operation, params)
    if found:
        code = "ValidationException" if model.protocol == "json" else _QUERY_CODE.get(service, "ValidationError")
        raise Refused(code, apimodel.message(found))


def _form(environ: Environ, body: bytes) -> dict[str, str]:
    raw = body.decode("utf-8", "replace") if body else environ.get("QUERY_STRING", "")
    return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def _refuse_all(refusals: Iterable[constraints.Refusal]) -> None:
    for refusal in refusals:
        raise Refused(refusal.code, refusal.message)


# ---------------------------------------------------------------------------- DynamoDB


def _dynamodb(operation: str, environ: Environ, body: bytes, account: str, region: str) -> None:
    try:
        params = json.loads(body or b"{}")
    except ValueError:
        return
    if operation == "CreateTable":
        name = str(params.get("TableName", ""))
        if not name.startswith("arn:"):
            _refuse_all(filter(None, [constraints.dynamodb_name(name)]))
        for index in [*params.get("GlobalSecondaryIndexes", []), *params.get("LocalSecondaryIndexes", [])]:
            _refuse_all(filter(None, [constraints.dynamodb_name(str(index.get("IndexName", "")), "index")]))
        _refuse_all(constraints.tag_refusals("dynamodb", _pairs(params.get("Tags"))))
    elif operation == "TagResource":
        tags = _pairs(params.get("Tags"))
        _refuse_all(constraints.tag_refusals("dynamodb", tags, _kept(_dynamodb_tags(account, region, params), tags)))


def _dynamodb_tags(account: str, region: str, params: dict[str, Any]) -> dict[str, str]:
    from moto.dynamodb.models import dynamodb_backends

    try:
        return _pairs(dynamodb_backends[account][region].list_tags_of_resource(params.get("ResourceArn", "")))
    except Exception:  # no such table: moto answers that
        return {}


# ---------------------------------------------------------------------------- ElastiCache


def _elasticache(operation: str, environ: Environ, body: bytes, account: str, region: str) -> None:
    if operation not in ("CreateReplicationGroup", "CreateCacheSubnetGroup", "AddTagsToResource"):
        return
    params = apimodel.from_query("elasticache", operation, _form(environ, body))
    if operation == "CreateReplicationGroup":
        _refuse_all(filter(None, [constraints.replication_group_id(str(params.get("ReplicationGroupId", "")))]))
    tags = _pairs(params.get("Tags"))
    kept = _kept(_elasticache_tags(account, region, params.get("ResourceName", "")), tags) \
        if operation == "AddTagsToResource" else 0
    _refuse_all(constraints.tag_refusals("elasticache", tags, kept))


def _elasticache_tags(account: str, region: str, arn: str) -> dict[str, str]:
    from moto.elasticache.models import elasticache_backends

    try:
        return _pairs(elasticache_backends[account][region].list_tags_for_resource(arn)["TagList"])
    except Exception:
        return {}


# ---------------------------------------------------------------------------- EC2


def _ec2(operation: str, environ: Environ, body: bytes, account: str, region: str) -> None:
    if operation not in ("CreateSecurityGroup", "CreateTags"):
        return
    params = apimodel.from_query("ec2", operation, _form(environ, body))
    tag_sets = [_pairs(s.get("Tags")) for s in params.get("TagSpecifications") or []] + [_pairs(params.get("Tags"))]
    for tags in tag_sets:
        _refuse_all(constraints.tag_refusals("ec2", tags))


# ---------------------------------------------------------------------------- S3


def _s3(operation: str, environ: Environ, body: bytes, account: str, region: str) -> None:
    bucket = unquote(environ.get("PATH_INFO", "")).lstrip("/").split("/", 1)[0]
    if operation == "CreateBucket":
        _refuse_all(filter(None, [constraints.bucket_name(bucket)]))
        _refuse_all(constraints.tag_refusals("s3", s3_request_tags(body, "CreateBucketConfiguration")))
    elif operation == "PutBucketTagging":  # the whole set, AWS's own aws: tags in it unchanged (s3.py checks them)
        tags = {k: v for k, v in s3_request_tags(body, "Tagging").items()
                if not k.lower().startswith(constraints.RESERVED_PREFIX)}
        _refuse_all(constraints.tag_refusals("s3", tags))
    elif operation == "PutBucketPolicy":
        _refuse_all(filter(None, [constraints.policy_refusal(body.decode("utf-8", "replace"))]))


def s3_request_tags(body: bytes, root: str) -> dict[str, str]:
    """The tags an S3 request body carries (<Tagging><TagSet><Tag>, or CreateBucketConfiguration's <Tags><Tag>)."""
    if not body:
        return {}
    try:
        document = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return {}
    tags = {}
    for tag in document.iter():
        if _local(tag.tag) == "Tag":
            key = next((c.text or "" for c in tag if _local(c.tag) == "Key"), None)
            value = next((c.text or "" for c in tag if _local(c.tag) == "Value"), "")
            if key is not None:
                tags[key] = value
    return tags


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]


# ---------------------------------------------------------------------------- CloudFront


def _cloudfront(operation: str, environ: Environ, body: bytes, account: str, region: str) -> None:
    if operation not in ("TagResource", "CreateDistributionWithTags", "CreateDistribution", "UpdateDistribution"):
        return
    try:
        document = ElementTree.fromstring(body) if body else None
    except ElementTree.ParseError:
        return
    if document is None:
        return
    comment = next((e.text or "" for e in document.iter() if _local(e.tag) == "Comment"), "")
    _refuse_all(filter(None, [constraints.distribution_comment(comment)]))
    tags = s3_request_tags(body, "Tags")
    kept = 0
    if operation == "TagResource":
        resource = parse_qs(environ.get("QUERY_STRING", "")).get("Resource", [""])[0]
        kept = _kept(_cloudfront_tags(account, resource), tags)
    _refuse_all(constraints.tag_refusals("cloudfront", tags, kept))


def _cloudfront_tags(account: str, arn: str) -> dict[str, str]:
    from moto.cloudfront.models import cloudfront_backends

    try:
        return _pairs(cloudfront_backends[account]["global"].list_tags_for_resource(arn)["Tags"])
    except Exception:
        return {}


# ---------------------------------------------------------------------------- helpers


def _pairs(tags: Any) -> dict[str, str]:
    """[{"Key": k, "Value": v}] (or {"Items": [...]}) as {k: v}."""
    if isinstance(tags, dict) and "Items" in tags:
        tags = tags["Items"]
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    return {str(t.get("Key")): str(t.get("Value") or "") for t in tags or [] if isinstance(t, dict)}


def _kept(existing: dict[str, str], new: dict[str, str]) -> int:
    """The resource's tags that stay beside these (a key written again is replaced, not added); aws: ones do not
    count."""
    return sum(1 for k in existing if k not in new and not k.lower().startswith(constraints.RESERVED_PREFIX))


_SERVICE_RULES: dict[str, Callable[[str, Environ, bytes, str, str], None]] = {
    "dynamodb": _dynamodb, "elasticache": _elasticache, "ec2": _ec2, "s3": _s3, "cloudfront": _cloudfront,
}


# ---------------------------------------------------------------------------- answers


def answer(refused: Refused, signing_name: str, start_response: Callable[..., Any]) -> list[bytes]:
    """The error as the service's protocol carries it (botocore parses the code from it)."""
    service = _SERVICE.get(signing_name, signing_name)
    try:
        protocol = apimodel.service_model(service).protocol
    except Exception:
        protocol = "rest-xml"
    code, message = refused.code, refused.message
    if protocol == "json":
        body = json.dumps({"__type": f"com.amazon.coral.validate#{code}", "message": message}).encode()
        content_type = "application/x-amz-json-1.0"
    else:
        escaped = (message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
        error = f"<Code>{code}</Code><Message>{escaped}</Message>"
        if protocol == "ec2":
            text = f"<Response><Errors><Error>{error}</Error></Errors><RequestID>sandbox</RequestID></Response>"
        elif service == "s3":
            text = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{error}<RequestId>sandbox</RequestId></Error>'
        else:
            text = (f"<ErrorResponse><Error><Type>Sender</Type>{error}</Error><RequestId>sandbox</RequestId>"
                    "</ErrorResponse>")
        body, content_type = text.encode(), "text/xml"
    start_response(f"{refused.status} Bad Request", [("Content-Type", content_type),
                                                      ("Content-Length", str(len(body)))])
    return [body]
