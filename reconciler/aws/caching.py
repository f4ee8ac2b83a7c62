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


# The managed cache policies' ids (the same in every account; Developer Guide, "Use managed cache policies"). Kept
# here because ListCachePolicies is one more call per cycle, and moto does not implement it.
MANAGED_CACHE_POLICIES = {
    "Managed-Amplify": "2e54312d-136d-493c-8eb9-b001f22f67d2",
    "Managed-CachingDisabled": "4135ea2d-6df8-44a3-9df3-4b5a84be39ad",
    "Managed-CachingOptimized": "658327ea-f89d-4fab-a63d-7e88639e58f6",
    "Managed-CachingOptimizedForUncompressedObjects": "b2884449-e4de-46a7-ac36-70bc7f1ddd6d",
    "Managed-Elemental-MediaPackage": "08627262-05a9-4f76-9ded-b50ca2e3a84f",
    "Managed-UseOriginCacheControlHeaders": "83da9c7e-98b4-4e11-a168-04f0df8e2c65",
    "Managed-UseOriginCacheControlHeaders-QueryStrings": "4cc15a8a-d715-48a4-82b8-cc0b614638fe",
}
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


def ttls_of(policy: str) -> Ttls:
    """The TTLs of a cache policy given by managed name or id (a custom policy: CachingOptimized's, the default)."""
    name = next((n for n, i in MANAGED_CACHE_POLICIES.items() if i == policy), policy)
    return MANAGED_TTLS.get(name, MANAGED_TTLS["Managed-CachingOptimized"])


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


def allowing_statements(policy: bytes | str | None, action: str) -> list[tuple[int, dict]]:
    """(position, statement) of each Allow statement of a bucket policy whose Action matches `action` (`*`
    wildcards as IAM reads them); none for a missing or unreadable policy."""
    try:
        statements = json.loads(policy or "{}").get("Statement") or []
    except (ValueError, AttributeError):
        return []
    found = []
    for i, statement in enumerate(statements if isinstance(statements, list) else [statements]):
        if statement.get("Effect") == "Allow" and any(fnmatch.fnmatchcase(action, a)
                                                      for a in _listed(statement.get("Action"))):
            found.append((i, statement))
    return found


def _listed(value: str | list[str] | None) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def public_statement(policy: bytes | str | None, bucket: str, key: str) -> str | None:
    """The Sid (or position) of a bucket policy statement that allows s3:GetObject of `key` to everyone."""
    arn = f"arn:aws:s3:::{bucket}/{key}"
    for i, statement in allowing_statements(policy, "s3:GetObject"):
        principal = statement.get("Principal")
        everyone = principal == "*" or (isinstance(principal, dict) and principal.get("AWS") in ("*", ["*"]))
        if everyone and "Condition" not in statement and any(fnmatch.fnmatchcase(arn, r)
                                                             for r in _listed(statement.get("Resource"))):
            return str(statement.get("Sid") or f"statement {i + 1}")
    return None
