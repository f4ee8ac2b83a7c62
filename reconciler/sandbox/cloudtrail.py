"""CloudTrail's event history in the sandbox: LookupEvents, served from the sandbox's own record of the write
calls it answered (moto has no LookupEvents). Ours, documented in docs/sandbox.md.

Each successful write becomes a management event as CloudTrail records it (User Guide, "CloudTrail record
contents"): eventTime, eventSource (`dynamodb.amazonaws.com`), eventName (the API operation), readOnly false,
userAgent, requestParameters (the request's top-level parameters in lowerCamelCase; the bucket of an S3 call as
`bucketName`, a CloudFront distribution's id as `id`) and userIdentity: the IAM user that owns the calling access
key, or the account's root when the key belongs to no user.

AWS's rules kept (API Reference, LookupEvents): one lookup attribute at most; StartTime/EndTime bound the
events; MaxResults 1..50 (default 50), newest first, NextToken to page on; "The rate of lookup requests is
limited to two per second, per account, per Region. If this limit is exceeded, a throttling error occurs."
Not modelled: how long CloudTrail takes before an event can be looked up (AWS documents no figure for the
event history); here it can be looked up at once.
"""

from __future__ import annotations

import collections
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

ACCOUNT = "123456789012"  # moto's default account
RATE_PER_S = 2
MAX_RESULTS = 50
KEPT = 5000
ATTRIBUTES = {"EventId": "eventID", "EventName": "eventName", "ReadOnly": "readOnly", "Username": "_username",
              "ResourceType": "_resourceType", "ResourceName": "_resourceNames", "EventSource": "eventSource",
              "AccessKeyId": "_accessKeyId"}
_KEY = re.compile(r"Credential=([^/]+)/")
_NAMES = re.compile(r"(name|id|arn|resource)$", re.IGNORECASE)  # the parameters that name a resource
_RESOURCE_TYPES = {"dynamodb": "AWS::DynamoDB::Table", "elasticache": "AWS::ElastiCache::ReplicationGroup",
                   "cloudfront": "AWS::CloudFront::Distribution", "s3": "AWS::S3::Bucket",
                   "ec2": "AWS::EC2::SecurityGroup"}


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _parameters(service: str, environ: dict[str, Any], body: bytes) -> dict[str, Any]:
    """The request's parameters as CloudTrail's requestParameters shows them (top level only)."""
    path = environ.get("PATH_INFO", "/")
    if service == "s3":
        bucket = path.strip("/").split("/", 1)[0]
        return {"bucketName": bucket} if bucket else {}
    if service == "cloudfront":
        parts = path.strip("/").split("/")[1:]  # drop the API version
        if len(parts) >= 2 and parts[0] in ("distribution", "origin-access-control"):
            return {"id": parts[1]}
        query = parse_qs(environ.get("QUERY_STRING", ""))
        return {"resource": query["Resource"][0]} if "Resource" in query else {}
    if environ.get("HTTP_X_AMZ_TARGET"):
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return {}
        return {_camel(k): v for k, v in data.items() if isinstance(v, str | int | float | bool)}
    form = parse_qs(body.decode("utf-8", "replace")) if body else parse_qs(environ.get("QUERY_STRING", ""))
    return {_camel(k): v[0] for k, v in form.items() if "." not in k and k not in ("Action", "Version")}


def _identity(access_key: str) -> dict[str, Any]:
    """The userIdentity CloudTrail records for a call signed with `access_key`."""
    from moto.iam.models import iam_backends

    try:
        user = iam_backends[ACCOUNT]["global"].get_user_from_access_key_id(access_key)
    except Exception:  # moto raises its own not-found errors
        user = None
    if user is not None:
        return {"type": "IAMUser", "principalId": user.id, "arn": user.arn, "accountId": ACCOUNT,
                "accessKeyId": access_key, "userName": user.name}
    return {"type": "Root", "principalId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:root", "accountId": ACCOUNT,
            "accessKeyId": access_key}


class Trail:
    """The event history of one sandbox."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=KEPT)
        self._lookups: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._events.clear()

    def record(self, service: str, operation: str, environ: dict[str, Any], body: bytes) -> None:
        """One successful write call, as CloudTrail would record it."""
        match = _KEY.search(environ.get("HTTP_AUTHORIZATION", ""))
        key = match.group(1) if match else ""
        identity = _identity(key)
        params = _parameters(service, environ, body)
        names = sorted({str(v) for k, v in params.items() if isinstance(v, str) and _NAMES.search(k)})
        event = {"eventVersion": "1.09", "userIdentity": identity, "eventTime": time.time(),
                 "eventSource": f"{service}.amazonaws.com", "eventName": operation, "awsRegion": "us-east-1",
                 "sourceIPAddress": environ.get("REMOTE_ADDR", "127.0.0.1"),
                 "userAgent": environ.get("HTTP_USER_AGENT", ""), "requestParameters": params,
                 "eventID": str(uuid.uuid4()), "readOnly": False, "eventType": "AwsApiCall",
                 "managementEvent": True, "recipientAccountId": ACCOUNT, "eventCategory": "Management",
                 "_username": identity.get("userName") or "root", "_accessKeyId": key,
                 "_resourceType": _RESOURCE_TYPES.get(service, ""), "_resourceNames": names}
        with self._lock:
            self._events.append(event)

    def lookup(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """LookupEvents: (HTTP status, answer)."""
        now = self._clock()
        with self._lock:
            while self._lookups and now - self._lookups[0] >= 1:
                self._lookups.popleft()
            if len(self._lookups) >= RATE_PER_S:
                return 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}
            self._lookups.append(now)
            events = list(self._events)
        attributes = payload.get("LookupAttributes") or []
        if len(attributes) > 1:
            return 400, {"__type": "InvalidLookupAttributesException",
                         "message": "You cannot specify more than one lookup attribute."}
        max_results = int(payload.get("MaxResults") or MAX_RESULTS)
        if not 1 <= max_results <= MAX_RESULTS:
            return 400, {"__type": "InvalidMaxResultsException",
                         "message": f"MaxResults must be between 1 and {MAX_RESULTS}."}
        start, end = payload.get("StartTime"), payload.get("EndTime")
        found = [e for e in reversed(events)
                 if (start is None or e["eventTime"] >= float(start)) and (end is None or e["eventTime"] <= float(end))
                 and all(_matches(e, a) for a in attributes)]
        offset = int(payload.get("NextToken") or 0)
        page = found[offset:offset + max_results]
        answer: dict[str, Any] = {"Events": [_shown(e) for e in page]}
        if offset + max_results < len(found):
            answer["NextToken"] = str(offset + max_results)
        return 200, answer


def _matches(event: dict[str, Any], attribute: dict[str, Any]) -> bool:
    field = ATTRIBUTES.get(str(attribute.get("AttributeKey")))
    want = str(attribute.get("AttributeValue"))
    if field is None:
        return False
    value = event.get(field)
    if isinstance(value, list):
        return want in value
    return str(value).lower() == want.lower() if isinstance(value, bool) else str(value) == want


def _shown(event: dict[str, Any]) -> dict[str, Any]:
    """One event as LookupEvents returns it, the full record as the CloudTrailEvent string."""
    record = {k: v for k, v in event.items() if not k.startswith("_")}
    record["eventTime"] = datetime.fromtimestamp(event["eventTime"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"EventId": event["eventID"], "EventName": event["eventName"], "ReadOnly": "false",
            "AccessKeyId": event["_accessKeyId"], "EventTime": event["eventTime"],
            "EventSource": event["eventSource"], "Username": event["_username"],
            "Resources": [{"ResourceType": event["_resourceType"], "ResourceName": n} for n in event["_resourceNames"]],
            "CloudTrailEvent": json.dumps(record)}
