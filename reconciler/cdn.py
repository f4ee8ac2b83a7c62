"""CloudFront's documented caching rules, used by the site check (how long the edge may keep an object) and by
the sandbox's edge (how long it keeps one): both follow AWS's words, cited here once.

- TTLs of the managed cache policies: CloudFront Developer Guide, "Use managed cache policies" (MinTTL,
  DefaultTTL, MaxTTL of each).
- How long an object stays: Developer Guide, "Manage how long content stays in the cache (expiration)":
  the origin's `Cache-Control: s-maxage` (else `max-age`) within [MinTTL, MaxTTL]; without either,
  DefaultTTL; with `no-cache`, `no-store` or `private`, MinTTL (not cached at all when MinTTL is 0).
- What a bucket policy gives everyone (S3 User Guide, "Bucket policy examples", granting read-only permission
  to an anonymous user; "The meaning of public"): an Allow of s3:GetObject to Principal "*" (or {"AWS": "*"}) on
  the object's ARN; a statement with a Condition is not counted public here (as GetBucketPolicyStatus judges it
  for the conditions a site's policy carries).
- What an invalidation path covers: Developer Guide, "What you need to know when invalidating files": a path
  is case sensitive, starts with `/`, and may end in one `*` (every path with that prefix); the default root
  object is cached under the path it was requested by (`/`), so invalidating `/index.html` leaves `/`.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Ttls:
    minimum: float
    default: float
    maximum: float


YEAR = 31_536_000
MANAGED_TTLS = {
    "Managed-CachingOptimized": Ttls(1, 86_400, YEAR),
    "Managed-CachingOptimizedForUncompressedObjects": Ttls(1, 86_400, YEAR),
    "Managed-CachingDisabled": Ttls(0, 0, 0),
    "Managed-UseOriginCacheControlHeaders": Ttls(0, 0, YEAR),
    "Managed-UseOriginCacheControlHeaders-QueryStrings": Ttls(0, 0, YEAR),
    "Managed-Amplify": Ttls(2, 2, YEAR),
    "Managed-Elemental-MediaPackage": Ttls(0, 86_400, YEAR),
}
_DIRECTIVE = re.compile(r"\s*([A-Za-z-]+)\s*(?:=\s*\"?(\d+)\"?)?\s*")


def directives(cache_control: str | None) -> dict[str, int | None]:
    """`public, max-age=60` -> {"public": None, "max-age": 60} (names lower-cased)."""
    out: dict[str, int | None] = {}
    for part in (cache_control or "").split(","):
        match = _DIRECTIVE.fullmatch(part)
        if match and match.group(1):
            out[match.group(1).lower()] = int(match.group(2)) if match.group(2) else None
    return out


def edge_ttl(ttls: Ttls, cache_control: str | None) -> float:
    """Seconds (of AWS's time) the edge keeps an object the origin answered with this Cache-Control; 0: not
    cached."""
    said = directives(cache_control)
    if any(d in said for d in ("no-cache", "no-store", "private")):
        return ttls.minimum
    age = said.get("s-maxage", said.get("max-age"))
    if age is None:
        return ttls.default
    return float(min(max(age, ttls.minimum), ttls.maximum))


def covers(invalidation_path: str, request_path: str) -> bool:
    """Does an invalidation of `invalidation_path` remove what the edge cached for `request_path`?"""
    if invalidation_path.endswith("*"):
        return request_path.startswith(invalidation_path[:-1])
    return request_path == invalidation_path


def public_statement(policy: bytes | str | None, bucket: str, key: str) -> str | None:
    """The Sid (or position) of a bucket policy statement that allows s3:GetObject of `key` to everyone."""
    try:
        statements = json.loads(policy or "{}").get("Statement") or []
    except (ValueError, AttributeError):
        return None
    for i, statement in enumerate(statements if isinstance(statements, list) else [statements]):
        principal = statement.get("Principal")
        everyone = principal == "*" or (isinstance(principal, dict) and principal.get("AWS") in ("*", ["*"]))
        actions = statement.get("Action") or []
        resources = statement.get("Resource") or []
        if (statement.get("Effect") != "Allow" or not everyone or "Condition" in statement):
            continue
        if not any(fnmatch.fnmatchcase("s3:GetObject", a) for a in ([actions] if isinstance(actions, str)
                                                                    else actions)):
            continue
        arn = f"arn:aws:s3:::{bucket}/{key}"
        if any(fnmatch.fnmatchcase(arn, r) for r in ([resources] if isinstance(resources, str) else resources)):
            return str(statement.get("Sid") or f"statement {i + 1}")
    return None
