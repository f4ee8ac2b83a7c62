"""A local AWS for trying the agent and for its tests: moto's server on loopback.

`Sandbox` is moto's ThreadedMotoServer with a thin WSGI layer in front that
- counts requests by (service, operation), served at GET /_sandbox/requests
  (DELETE resets the count), so tests prove "no write call" at the server;
- carries small fidelity fixes where moto departs from AWS in a way that matters to the
  agent (each documented in FIXES below and tested in tests/integration/test_sandbox.py).

Nothing here is used against a real account.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

SANDBOX_REGION = "us-east-1"
_READ_PREFIXES = ("Describe", "List", "Get", "BatchGet", "Query", "Scan", "Head")
_SCOPE = re.compile(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/aws4_request")

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def is_read(operation: str) -> bool:
    """True for operations that only read (Describe*, List*, Get*, GET/HEAD on REST APIs)."""
    return operation.startswith(_READ_PREFIXES) or operation.split(" ", 1)[0] in ("GET", "HEAD")


def _service_of(environ: Environ) -> str:
    match = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else "unknown"


def _operation_of(environ: Environ, body: bytes) -> str:
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
    return _rest_operation(_service_of(environ), environ.get("REQUEST_METHOD", "GET"),
                           environ.get("PATH_INFO", "/"), parse_qs(environ.get("QUERY_STRING", ""),
                                                                   keep_blank_values=True))


_S3_SUBRESOURCES = {"tagging": "BucketTagging", "policy": "BucketPolicy", "publicAccessBlock": "PublicAccessBlock",
                    "versioning": "BucketVersioning", "acl": "BucketAcl", "location": "BucketLocation",
                    "ownershipControls": "BucketOwnershipControls", "encryption": "BucketEncryption"}
_VERB = {"GET": "Get", "PUT": "Put", "DELETE": "Delete", "HEAD": "Head", "POST": "Post"}
_CLOUDFRONT = {
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


def _rest_operation(service: str, method: str, path: str, query: dict[str, list[str]]) -> str:
    """The API operation of a REST request (S3, CloudFront), as AWS names it."""
    if service == "s3":
        _bucket, _, key = path.strip("/").partition("/")
        sub = next((_S3_SUBRESOURCES[q] for q in query if q in _S3_SUBRESOURCES), None)
        if key:
            if "uploads" in query:
                return "CreateMultipartUpload"
            if "uploadId" in query:
                return {"PUT": "UploadPart", "POST": "CompleteMultipartUpload",
                        "DELETE": "AbortMultipartUpload"}.get(method, "ListParts")
            return {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject",
                    "DELETE": "DeleteObject"}.get(method, f"{method} object")
        if sub:
            return f"{_VERB.get(method, method)}{sub}"
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
        return _CLOUDFRONT.get((method, shape), f"{method} {shape}")
    return f"{method} {path}"


# --------------------------------------------------------------------------- fidelity fixes


def _one_gsi_change_per_update(service: str, operation: str, body: bytes) -> tuple[int, dict[str, Any]] | None:
    """DynamoDB allows one GSI Create or Delete per UpdateTable call; moto accepts several.

    AWS answers LimitExceededException ("Subscriber limit exceeded: Only 1 online index can
    be created or deleted simultaneously per table"). The agent must sequence them.
    """
    if service != "dynamodb" or operation != "UpdateTable":
        return None
    updates = json.loads(body or b"{}").get("GlobalSecondaryIndexUpdates") or []
    online = [u for u in updates if "Create" in u or "Delete" in u]
    if len(online) <= 1:
        return None
    return 400, {
        "__type": "com.amazonaws.dynamodb.v20120810#LimitExceededException",
        "message": "Subscriber limit exceeded: Only 1 online index can be created or deleted "
                   "simultaneously per table",
    }


FIXES: list[Callable[[str, str, bytes], tuple[int, dict[str, Any]] | None]] = [
    _one_gsi_change_per_update,
]


def patch_moto_cloudfront() -> None:
    """Fidelity fixes inside moto's CloudFront model (idempotent). In moto 5.2.5:

    - stored origins drop `OriginAccessControlId` and `S3OriginConfig`: kept as sent;
    - `IfMatch` is ignored and the ETag never changes: a stale ETag now fails with
      PreconditionFailed (412) and every update issues a new ETag, as on AWS;
    - an updated distribution stays Deployed: on AWS every change deploys again
      (Status InProgress), which the agent reports and `apply --wait` waits for;
    - DeleteDistribution of an enabled distribution succeeds: AWS answers
      DistributionNotDisabled (409);
    - invalidation CallerReferences are not deduplicated: AWS returns the existing
      invalidation for a repeated (CallerReference, paths) and refuses the same reference
      with other paths (InvalidationBatchAlreadyExists).
    """
    from moto.cloudfront import models
    from moto.cloudfront.exceptions import CloudFrontException

    backend = models.CloudFrontBackend
    if getattr(backend, "_reconciler_patched", False):
        return
    backend._reconciler_patched = True  # type: ignore[attr-defined]

    origin_init = models.Origin.__init__

    def origin_keeps_access_control(self: Any, origin: dict[str, Any]) -> None:
        origin_init(self, origin)
        self.origin_access_control_id = origin.get("OriginAccessControlId") or ""
        if "S3OriginConfig" in origin:
            self.s3_origin_config = {
                "OriginAccessIdentity": origin["S3OriginConfig"].get("OriginAccessIdentity") or ""}

    def check_etag(dist: Any, if_match: str | None) -> None:
        if not if_match or if_match != dist.etag:
            raise CloudFrontException(
                "PreconditionFailed",
                "The precondition given in one or more of the request-header fields evaluated to false.")

    update = backend.update_distribution

    def update_with_etag(self: Any, dist_config: dict[str, Any], _id: str, if_match: Any) -> Any:
        if _id in self.distributions:
            check_etag(self.distributions[_id], if_match)
        dist, location, _ = update(self, dist_config, _id, if_match)
        dist.etag = models.random_id()
        dist.status, dist._tick = "InProgress", 0
        return dist, location, dist.etag

    delete = backend.delete_distribution

    def delete_disabled_only(self: Any, distribution_id: str, if_match: Any) -> None:
        dist = self.distributions.get(distribution_id)
        if dist is not None:
            check_etag(dist, if_match)
            if dist.distribution_config.Enabled in (True, "true", "True"):
                raise CloudFrontException(
                    "DistributionNotDisabled", "The distribution you are trying to delete has not been disabled.")
        delete(self, distribution_id, if_match)

    create_invalidation = backend.create_invalidation

    def deduplicated_invalidation(self: Any, dist_id: str, paths: list[str], caller_ref: str) -> Any:
        for existing in self.invalidations.get(dist_id, []):
            if existing.caller_ref == caller_ref:
                if sorted(existing.paths) == sorted(paths):
                    return existing
                raise CloudFrontException(
                    "InvalidationBatchAlreadyExists",
                    "The CallerReference you are using to create an invalidation batch is associated "
                    "with another invalidation batch.")
        return create_invalidation(self, dist_id, paths, caller_ref)

    models.Origin.__init__ = origin_keeps_access_control  # type: ignore[method-assign]
    backend.update_distribution = update_with_etag  # type: ignore[method-assign]
    backend.delete_distribution = delete_disabled_only  # type: ignore[method-assign]
    backend.create_invalidation = deduplicated_invalidation  # type: ignore[method-assign]


class _Middleware:
    """Counts requests and applies the fidelity fixes in front of moto's WSGI app."""

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/_sandbox/requests":
            return self._requests(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = b""
        if length:
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
        if path.startswith("/moto-api"):
            return self.app(environ, start_response)
        service, operation = _service_of(environ), _operation_of(environ, body)
        with self._lock:
            self.counts[(service, operation)] += 1
        for fix in FIXES:
            answer = fix(service, operation, body)
            if answer is not None:
                status, payload = answer
                return _json(start_response, status, payload, "application/x-amz-json-1.0")
        return self.app(environ, start_response)

    def _requests(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            if environ.get("REQUEST_METHOD") == "DELETE":
                self.counts.clear()
            rows = [{"service": s, "operation": o, "count": n, "read": is_read(o)}
                    for (s, o), n in sorted(self.counts.items())]
        return _json(start_response, 200, {"requests": rows})


def _json(start_response: StartResponse, status: int, payload: Any,
          content_type: str = "application/json") -> list[bytes]:
    data = json.dumps(payload).encode()
    reason = {200: "OK", 400: "Bad Request"}.get(status, "Error")
    start_response(f"{status} {reason}", [("Content-Type", content_type),
                                          ("Content-Length", str(len(data)))])
    return [data]


class Sandbox(ThreadedMotoServer):
    """moto's threaded server on 127.0.0.1 (port 0 = a free one), with the layer above."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1"):
        super().__init__(ip_address=host, port=port, verbose=False)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.middleware: _Middleware | None = None

    def _server_entry(self) -> None:
        patch_moto_cloudfront()
        patch_moto_dynamodb()
        patch_moto_elasticache()
        self.middleware = _Middleware(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, self.middleware, threaded=True)
        self._server_ready_event.set()
        self._server.serve_forever()

    def start(self) -> None:
        super().start()
        self.seed()

    def seed(self) -> None:
        """Create what a real account already has and the agent does not own: a `bastion`
        security group in the default VPC, standing in for the host the agent runs on."""
        import boto3

        env = self.environment()
        session = boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                                        region_name=SANDBOX_REGION)
        ec2 = session.client("ec2", endpoint_url=self.endpoint)
        vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
        existing = ec2.describe_security_groups(Filters=[
            {"Name": "group-name", "Values": ["bastion"]}, {"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"]
        if not existing:
            ec2.create_security_group(GroupName="bastion", VpcId=vpc,
                                      Description="Sandbox fixture: the bastion host the agent runs on")
        with self.middleware._lock if self.middleware else contextlib.nullcontext():
            if self.middleware:
                self.middleware.counts.clear()

    @property
    def endpoint(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"

    def environment(self) -> dict[str, str]:
        """The environment variables that point boto3 (and the AWS CLI) at this sandbox."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "sandbox",
            "AWS_SECRET_ACCESS_KEY": "sandbox",
            "AWS_SESSION_TOKEN": "sandbox",
            "AWS_REGION": SANDBOX_REGION,
            "AWS_DEFAULT_REGION": SANDBOX_REGION,
            "RECONCILER_SANDBOX": "1",
        }


# Variables that could send a sandboxed process to a real account or elsewhere.
ISOLATE = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
           "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
           "AWS_CONTAINER_CREDENTIALS_FULL_URI")


def enter_sandbox(environ: dict[str, str]) -> Sandbox:
    """Start a sandbox and point this process's AWS configuration at it (only it)."""
    for key in list(environ):
        if key in ISOLATE or key.startswith("AWS_ENDPOINT_URL_"):
            del environ[key]
    sandbox = Sandbox()
    sandbox.start()
    environ.update(sandbox.environment())
    environ["AWS_CONFIG_FILE"] = environ["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
    return sandbox


class _MemberCluster:
    """A replication group's member as DescribeCacheClusters shows it on AWS."""

    def __init__(self, group: Any, cluster_id: str):
        self.cache_cluster_id = cluster_id
        self.replication_group_id = group.replication_group_id
        self.cache_cluster_status = "available"
        self.engine = group.engine
        self.engine_version = getattr(group, "engine_version", None) or "7.1.0"
        self.cache_node_type = group.cache_node_type
        self.num_cache_nodes = 1
        self.cache_subnet_group_name = group.cache_subnet_group_name
        self.security_groups = [{"SecurityGroupId": g, "Status": "active"} for g in group.security_group_ids or []]
        self.transit_encryption_enabled = group.transit_encryption_enabled
        self.auth_token_enabled = group.auth_token_enabled
        self.arn = group.arn.replace(":replicationgroup:", ":cluster:").rsplit(":", 1)[0] + f":{cluster_id}"


def patch_moto_dynamodb() -> None:
    """Fidelity fix inside moto's DynamoDB model (idempotent). In moto 5.2.5 TagResource appends
    a tag whose key the table already has, so ListTagsOfResource lists the key twice (and pages
    of it disagree); AWS overwrites the value."""
    from moto.dynamodb import models

    backend = models.DynamoDBBackend
    if getattr(backend, "_reconciler_patched", False):
        return
    backend._reconciler_patched = True  # type: ignore[attr-defined]

    def tag_resource_overwrites(self: Any, arn: str, tags: dict[str, str]) -> None:
        for table in self.tables.values():
            if table.table_arn == arn:
                kept = [t for t in table.tags if t["Key"] not in tags]
                table.tags = kept + [{"Key": k, "Value": v} for k, v in tags.items()]

    backend.tag_resource = tag_resource_overwrites  # type: ignore[method-assign]


def patch_moto_elasticache() -> None:
    """Fidelity fixes inside moto's ElastiCache model (idempotent). In moto 5.2.5:

    - CreateReplicationGroup ignores NumCacheClusters (always one member): honoured;
    - member clusters are missing from DescribeCacheClusters, so their engine version and
      security groups (which AWS reports only there) cannot be read: described as on AWS;
    - ModifyReplicationGroup ignores EngineVersion, AuthToken and SecurityGroupIds: applied;
    - IncreaseReplicaCount / DecreaseReplicaCount are not implemented: implemented for
      cluster-mode-disabled groups.
    """
    from moto.core.responses import ActionResult
    from moto.elasticache import models, responses

    backend, answers = models.ElastiCacheBackend, responses.ElastiCacheResponse
    if getattr(backend, "_reconciler_patched", False):
        return
    backend._reconciler_patched = True  # type: ignore[attr-defined]

    create = backend.create_replication_group

    def create_with_members(self: Any, **kwargs: Any) -> Any:
        if kwargs.get("num_cache_clusters") and not kwargs.get("replicas_per_node_group"):
            kwargs["replicas_per_node_group"] = kwargs["num_cache_clusters"] - 1
        return create(self, **kwargs)

    describe = backend.describe_cache_clusters

    def describe_with_members(self: Any, cache_cluster_id: str | None = None) -> Any:
        members = [_MemberCluster(g, m) for g in self.replication_groups.values() for m in g.member_clusters]
        if cache_cluster_id:
            found = [m for m in members if m.cache_cluster_id == cache_cluster_id]
            return found or describe(self, cache_cluster_id)
        return describe(self) + members

    modify_answer = answers.modify_replication_group

    def modify_more(self: Any) -> Any:
        group = self.elasticache_backend.replication_groups.get(self._get_param("ReplicationGroupId"))
        if group is not None:
            if self._get_param("EngineVersion"):
                group.engine_version = self._get_param("EngineVersion")
            if self._get_param("AuthToken"):
                group.auth_token_enabled = True
            ids = self._get_param("SecurityGroupIds")
            if ids:
                group.security_group_ids = ids
        return modify_answer(self)

    def set_replicas(self: Any) -> Any:
        group = self.elasticache_backend.replication_groups[self._get_param("ReplicationGroupId")]
        count = self._get_int_param("NewReplicaCount")
        node_group = group.node_groups[0]
        primary = node_group["node_group_members"][0]
        members = [primary]
        for r in range(1, count + 1):
            member_id = f"{group.replication_group_id}-{r + 1:0>3}"
            members.append({**primary, "cache_cluster_id": member_id, "current_role": "replica",
                            "read_endpoint": {**primary["read_endpoint"],
                                              "address": primary["read_endpoint"]["address"].replace(
                                                  primary["cache_cluster_id"], member_id)}})
        node_group["node_group_members"] = members
        group.member_clusters = [m["cache_cluster_id"] for m in members]
        return ActionResult({"ReplicationGroup": group})

    backend.create_replication_group = create_with_members  # type: ignore[method-assign]
    backend.describe_cache_clusters = describe_with_members  # type: ignore[method-assign]
    answers.modify_replication_group = modify_more  # type: ignore[method-assign]
    answers.increase_replica_count = set_replicas  # type: ignore[attr-defined]
    answers.decrease_replica_count = set_replicas  # type: ignore[attr-defined]
