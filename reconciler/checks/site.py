"""The site as its visitors get it: a check through each Distribution, step by step, like the Redis one (steps.py).

Steps: `dns` (the domain and each alias resolve), `tls` (the certificate is valid for the name; days to expiry),
`redirect` (plain HTTP is sent to HTTPS, when the viewer policy says so), `content` (the root object, the keys the
last publish changed and `healthCheck.paths`, fetched through the edge and compared with what the bucket holds: its
ETag, the content hash S3 keeps), `origin` (an anonymous GET straight from the bucket's S3 endpoint is refused, as
Origin Access Control intends). Each step's latency is measured; the first failure stops the check and says the
likely cause.

Content the edge serves that is not what was published is `stale`, not a failure, while an invalidation covering it
runs (until 1.5 x AWS's p90 for one) or while the cache may keep it no longer than `healthCheck.maxStaleSeconds`
(default 300); past either, or with an invalidation that completed and did not fix it, the site is `unhealthy`. A
bucket anyone can read is `unhealthy`: a security finding naming the policy statement or the public-access setting.

What it reads: from AWS nothing the cycle has not read already (the distribution and the bucket's listing come from
the plan; `reconciler health` observes them itself), plus the last publish's record (one GetObject, only when its
ETag changed) and, only for stale content, ListInvalidations and GetInvalidation; from the edge one HTTPS GET per
checked path and one plain HTTP GET; from the bucket one anonymous GET. docs/specs.md counts them.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from reconciler.aws.caching import covers, edge_ttl, public_statement, ttls_of
from reconciler.aws.expected_durations import ExpectedDurations, in_words
from reconciler.checks.steps import CheckResult, StepFailed, timed
from reconciler.checks.viewer import Edge, Visitor, request

DEFAULT_MAX_STALE_S = 300
MAX_KEYS = 10  # of the last publish's changes, fetched per check


@dataclass
class PathCheck:
    """One path fetched through the edge, against what the bucket holds."""

    path: str
    key: str
    state: str                       # current | stale | missing
    served: str | None = None        # the ETag the edge served
    published: str | None = None     # the ETag the bucket holds
    published_at: str | None = None
    cache: str | None = None         # X-Cache
    age: int | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in {"path": self.path, "key": self.key, "state": self.state, "served": self.served,
                                  "published": self.published, "publishedAt": self.published_at, "cache": self.cache,
                                  "age": self.age, "detail": self.detail or None}.items() if v is not None}


@dataclass
class SiteResult(CheckResult):
    """The site check of one distribution: healthy, stale, unhealthy (with cause), or skipped (with why)."""

    distribution: str
    domain: str | None
    paths: list[PathCheck] = field(default_factory=list)
    stale: str | None = None         # why the content is stale but not (yet) a failure
    security: bool = False           # the failure is a security finding (a bucket open to the world)

    @property
    def status(self) -> str:
        """Stale content that is on its way out is not failing: `stale`, and healthy."""
        if self.skipped:
            return "skipped"
        return "unhealthy" if self.error else "stale" if self.stale else "healthy"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"distribution": self.distribution, "domain": self.domain, **self.outcome_json(),
                               "paths": [p.to_json() for p in self.paths]}
        if self.stale:
            out["stale"] = self.stale
        if self.security:
            out["security"] = True
        return out


@dataclass
class SiteFacts:
    """What the check needs to know of the distribution and its bucket (from the cycle's plan, or observed)."""

    distribution_id: str
    domain: str
    config: dict[str, Any]           # the DistributionConfig, as AWS gives it
    bucket: str
    published: dict[str, str]        # key -> the ETag the bucket holds
    last_publish: dict[str, Any] | None


def check_site(spec: Any, facts: SiteFacts | None, aws: Any, *, edge: Edge | None = None,
               durations: ExpectedDurations | None = None, factor: float = 1.0) -> SiteResult:
    """The site check of one Distribution spec. Never raises for a failed check."""
    check = spec.spec.get("healthCheck") or {}
    if check.get("enabled") is False:
        return SiteResult(spec.name, None, skipped="healthCheck.enabled is false")
    if facts is None:
        return SiteResult(spec.name, None, error="the distribution does not exist (yet)",
                          cause="apply the specs first; the check runs once the distribution exists")
    result = SiteResult(spec.name, facts.domain)
    edge = edge or Edge(ca_file=_ca_file(spec, check))
    timeout = float(check.get("timeoutSeconds", 5))
    names = [facts.domain, *((facts.config.get("Aliases") or {}).get("Items") or [])]
    try:
        addresses = _step(result, "dns", lambda: _resolve_all(names, edge))
        result.steps[-1].detail = ", ".join(f"{n} -> {a}" for n, a in addresses.items()) + (
            " (the sandbox's edge)" if edge.sandbox else "")
        _step(result, "tls", lambda: _tls(addresses, names, edge, timeout))
        viewer = (facts.config.get("DefaultCacheBehavior") or {}).get("ViewerProtocolPolicy", "allow-all")
        if viewer != "allow-all":
            _step(result, "redirect", lambda: _redirect(addresses[facts.domain], facts.domain, viewer, edge, timeout))
        _step(result, "content", lambda: _content(result, facts, check, addresses[facts.domain], edge, timeout,
                                                  aws, durations or ExpectedDurations(None), factor))
        _step(result, "origin", lambda: _origin_refuses(result, facts, aws, edge, timeout))
    except StepFailed as exc:
        result.failed(exc)
    return result


def _step(result: SiteResult, name: str, action: Any) -> Any:
    """One timed step; what it returns, when text, is its detail."""
    return timed(result, name, action)


def _ca_file(spec: Any, check: dict[str, Any]) -> str | None:
    ca = check.get("caFile")
    if ca and not os.path.isabs(ca):
        return str(spec.source_dir / ca)
    return ca


def _resolve_all(names: list[str], edge: Edge) -> dict[str, str]:
    """Each name's address (the sandbox's edge for every name in the sandbox)."""
    out = {}
    for name in names:
        if edge.address is not None:
            out[name] = edge.address
            continue
        try:
            out[name] = socket.getaddrinfo(name, edge.port, type=socket.SOCK_STREAM)[0][4][0]
        except socket.gaierror as exc:
            raise StepFailed(f"{name} does not resolve: {exc.strerror}",
                              "DNS: an alias needs a record (Route 53 alias or CNAME) pointing at the distribution's "
                              "domain; the distribution's own domain resolves once it is deployed") from None
    return out


def _tls(addresses: dict[str, str], names: list[str], edge: Edge, timeout: float) -> str:
    """Every name's certificate verifies; returns the soonest expiry, in days."""
    soonest: tuple[float, str] | None = None
    for name in names:
        context = ssl.create_default_context(cafile=edge.ca_file)
        try:
            with socket.create_connection((addresses[name], edge.port), timeout=timeout) as raw, \
                    context.wrap_socket(raw, server_hostname=name) as tls:
                cert = tls.getpeercert() or {}
        except ssl.SSLCertVerificationError as exc:
            raise StepFailed(f"{name}: {exc.verify_message}",
                              "the certificate is not valid for this name: an alias needs an ACM certificate (in "
                              "us-east-1) that lists it, set as spec.certificateArn") from None
        except OSError as exc:
            raise StepFailed(f"{name}: cannot connect on {edge.port}: {exc}",
                              "the edge does not answer: is the distribution enabled and deployed?") from None
        days = (ssl.cert_time_to_seconds(cert["notAfter"]) - time.time()) / 86400
        if soonest is None or days < soonest[0]:
            soonest = (days, name)
    assert soonest is not None
    if soonest[0] < 14:
        raise StepFailed(f"the certificate of {soonest[1]} expires in {soonest[0]:.0f} days",
                          "renew it (ACM renews certificates it validated by DNS when the record is still there)")
    return f"valid for every name; expires in {soonest[0]:.0f} days"


def _redirect(address: str, domain: str, viewer: str, edge: Edge, timeout: float) -> str:
    status, headers, _ = request(address, domain, "/", edge, timeout, https=False)
    if viewer == "redirect-to-https":
        if status not in (301, 302, 307, 308) or not headers.get("location", "").startswith("https://"):
            raise StepFailed(f"http://{domain}/ answered {status}, not a redirect to HTTPS",
                              "the viewer protocol policy is not applied: check the default cache behavior")
    elif viewer == "https-only" and status != 403:
        raise StepFailed(f"http://{domain}/ answered {status}; https-only should refuse it (403)",
                          "the viewer protocol policy is not applied: check the default cache behavior")
    return f"http://{domain}/ -> {status} {headers.get('location', '')}".rstrip()


def _paths(facts: SiteFacts, check: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, key) to fetch: the root object, the last publish's changes (bounded), healthCheck.paths."""
    root = facts.config.get("DefaultRootObject") or ""
    out = [("/", root)] if root else []
    changed = ((facts.last_publish or {}).get("keys") or [])[:MAX_KEYS]
    out += [("/" + key, key) for key in changed if key in facts.published]
    out += [(path, path.lstrip("/") or root) for path in check.get("paths") or []]
    seen: set[str] = set()
    return [(p, k) for p, k in out if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]


def _content(result: SiteResult, facts: SiteFacts, check: dict[str, Any], address: str, edge: Edge,
             timeout: float, aws: Any, durations: ExpectedDurations, factor: float) -> str:
    visitor = Visitor(address, facts.domain, edge, timeout)
    try:
        _fetch_paths(result, facts, check, visitor, aws, durations, factor)
    finally:
        visitor.close()
    stale = [p for p in result.paths if p.state == "stale"]
    return (f"{len(result.paths)} path(s) current" if not stale
            else f"{len(stale)} of {len(result.paths)} path(s) stale: {', '.join(p.path for p in stale)}")


def _fetch_paths(result: SiteResult, facts: SiteFacts, check: dict[str, Any], visitor: Visitor, aws: Any,
                 durations: ExpectedDurations, factor: float) -> None:
    for path, key in _paths(facts, check):
        status, headers, _ = visitor.get(path)
        etag = (headers.get("etag") or "").strip('"') or None
        age = int(headers["age"]) if headers.get("age", "").isdigit() else None
        found = PathCheck(path, key, "current", etag, facts.published.get(key), _published_at(facts, key),
                          headers.get("x-cache"), age)
        result.paths.append(found)
        if status >= 400:
            found.state = "missing"
            raise StepFailed(f"GET {path} through {facts.domain}: {status}", _why_status(status, key, facts))
        if found.published and etag != found.published:
            found.state = "stale"
            _judge_stale(result, found, facts, headers, aws, check, durations, factor)


def _published_at(facts: SiteFacts, key: str) -> str | None:
    last = facts.last_publish or {}
    return last.get("at") if key in (last.get("keys") or []) else None


def _why_status(status: int, key: str, facts: SiteFacts) -> str:
    if status == 403 and key not in facts.published:
        return f"{key!r} is not in the bucket (S3 answers a missing key with 403 when it may not list)"
    if status == 403:
        return ("the origin refused CloudFront: the bucket policy must allow cloudfront.amazonaws.com for this "
                "distribution (the Distribution spec writes it; is it drifted?)")
    return "the edge or the origin failed: CloudFront's error pages and the origin's settings"


def _judge_stale(result: SiteResult, found: PathCheck, facts: SiteFacts, headers: dict[str, str], aws: Any,
                 check: dict[str, Any], durations: ExpectedDurations, factor: float) -> None:
    """Stale: on its way out (an invalidation runs, or the cache lets it go soon) or a failure."""
    served = f"the edge serves ETag {found.served}, the bucket holds {found.published}"
    since = f" (published {found.published_at})" if found.published_at else ""
    running, done = _invalidations_covering(aws, facts.distribution_id, found.path)
    expected = durations.expected("cloudfront.invalidation")
    if running:
        made = running[0]
        created = made["CreateTime"]
        late = created + timedelta(seconds=expected.slow_after())
        found.detail = (f"{served}{since}; invalidation {made['Id']} covers it, in progress since "
                        f"{created.isoformat(timespec='seconds')} (AWS usually takes ~{in_words(expected.seconds)})")
        if datetime.now(UTC) > late:
            raise StepFailed(f"{found.path} is stale: {found.detail}; past its expected end",
                              "the invalidation is slow: AWS's Service Health Dashboard, or CloudFront's quotas on "
                              "invalidations in progress")
        result.stale = result.stale or f"{found.path}: {found.detail}"
        return
    if done:
        found.detail = f"{served}{since}; invalidation {done[0]['Id']} covering it completed, and it is still stale"
        raise StepFailed(f"{found.path} is stale: {found.detail}",
                          "the edge did not drop it: a path that differs in case or encoding, or another behavior "
                          "caches it under a different key")
    ttl = edge_ttl(_ttls(facts.config, found.path), headers.get("cache-control"))
    remaining = max(0.0, ttl - (found.age or 0))
    until = datetime.now(UTC) + timedelta(seconds=remaining * factor)
    found.detail = (f"{served}{since}; no invalidation covers it: the edge may keep it until "
                    f"{until.isoformat(timespec='seconds')} (a TTL of {in_words(ttl)} from the cache policy and "
                    "Cache-Control)")
    if remaining > float(check.get("maxStaleSeconds", DEFAULT_MAX_STALE_S)):
        raise StepFailed(f"{found.path} is stale: {found.detail}",
                          "publish with `invalidate:` on the bucket's content (or invalidate the path), or give it a "
                          "shorter Cache-Control")
    result.stale = result.stale or f"{found.path}: {found.detail}"


def _ttls(config: dict[str, Any], path: str) -> Any:
    import fnmatch

    behavior = config.get("DefaultCacheBehavior") or {}
    for item in (config.get("CacheBehaviors") or {}).get("Items") or []:
        pattern = item.get("PathPattern", "")
        if fnmatch.fnmatchcase(path, pattern if pattern.startswith("/") else "/" + pattern):
            behavior = item
            break
    return ttls_of(behavior.get("CachePolicyId") or "")


def _invalidations_covering(aws: Any, distribution_id: str, path: str) -> tuple[list[dict[str, Any]],
                                                                                list[dict[str, Any]]]:
    """(in progress, completed) invalidations whose paths cover `path`, newest first (at most 5 read)."""
    cf = aws.client("cloudfront")
    listed = (cf.list_invalidations(DistributionId=distribution_id).get("InvalidationList") or {}).get("Items") or []
    listed.sort(key=lambda i: i["CreateTime"], reverse=True)
    running, done = [], []
    for summary in listed[:5]:
        made = cf.get_invalidation(DistributionId=distribution_id, Id=summary["Id"])["Invalidation"]
        paths = made["InvalidationBatch"]["Paths"].get("Items") or []
        if any(covers(p, path) for p in paths):
            (running if made["Status"] == "InProgress" else done).append(made)
    return running, done


def _origin_refuses(result: SiteResult, facts: SiteFacts, aws: Any, edge: Edge, timeout: float) -> str:
    """An anonymous GET straight from the bucket's S3 endpoint must be refused (403)."""
    key = facts.config.get("DefaultRootObject") or next(iter(facts.published), "")
    if not key:
        return "nothing published to try"
    url = _bucket_url(facts.bucket, key, aws, edge)
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "reconciler"}),
                                    timeout=timeout) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        return f"the bucket's endpoint did not answer ({exc}); not judged"
    if status in (401, 403):
        return f"GET {url} without credentials: {status} (refused)"
    result.security = True
    raise StepFailed(f"bucket {facts.bucket} serves {key!r} to anyone: GET {url} without credentials answered "
                      f"{status}", _open_because(aws, facts.bucket, key))


def _bucket_url(bucket: str, key: str, aws: Any, edge: Edge) -> str:
    path = quote(key, safe="/~-_.!*'()")
    if edge.sandbox:
        return f"{(os.environ.get('AWS_ENDPOINT_URL') or '').rstrip('/')}/{bucket}/{path}"
    return f"https://{bucket}.s3.{aws.region}.amazonaws.com/{path}"


def _open_because(aws: Any, bucket: str, key: str) -> str:
    """Which setting lets everyone read: the policy statement, and Block Public Access being off."""
    s3 = aws.client("s3")
    said = []
    try:
        policy = s3.get_bucket_policy(Bucket=bucket)["Policy"]
        statement = public_statement(policy, bucket, key)
        if statement:
            said.append(f"bucket policy statement {statement!r} allows s3:GetObject to everyone")
    except Exception:  # no policy, or no permission to read it: said without it
        pass
    try:
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        off = [k for k in ("RestrictPublicBuckets", "IgnorePublicAcls") if not block.get(k)]
        if off:
            said.append(f"Block Public Access has {' and '.join(off)} off")
    except Exception:  # NoSuchPublicAccessBlockConfiguration: nothing blocks
        said.append("the bucket has no Block Public Access configuration")
    found = "; ".join(said) or "an ACL or a policy grants public read"
    return (f"a security finding: {found}. The site must be read only through CloudFront (Origin Access Control): "
            "spec.blockPublicAccess: true on the Bucket, and the Distribution's bucket policy, put it back")
