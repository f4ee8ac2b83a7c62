"""The checks, run from one place for `reconciler health` and for the agent's cycle: each CacheCluster's Redis
check, and each Distribution's site check from the facts of its distribution and bucket (read now, or taken
from what the cycle planned)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconciler.aws.client import Aws
from reconciler.aws.endpoints import aws_time_factor
from reconciler.aws.expected_durations import ExpectedDurations
from reconciler.aws.failures import describe_failure
from reconciler.checks.redis import RedisResult, check_cluster
from reconciler.checks.site import SiteFacts, SiteResult, check_site
from reconciler.checks.viewer import Edge, sandbox_edge
from reconciler.core.plainjson import dumps
from reconciler.core.types import Live
from reconciler.kinds import Resource, registry
from reconciler.kinds.bucket.content import read_last_publish, read_remote
from reconciler.spec.documents import Spec, SpecSet

Records = dict[str, tuple[str, dict[str, Any] | None]]  # bucket -> (ETag, record) of its last publish


@dataclass
class Site:
    """What the site check of one Distribution spec starts from: the distribution and its bucket as read, or
    why it is not checked now."""

    spec: Spec
    distribution: Resource | None = None
    live: Live | None = None
    bucket_live: Live | None = None
    published_now: bool = False      # the bucket was published after it was read: its listing is read again
    skipped: str | None = None


DEFAULT_SITE_INTERVAL_S = 300.0  # a healthy site whose distribution and bucket are unchanged is checked this often


class SiteChecks:
    """When a site need not be fetched from the edge again: its last check was healthy, less than its interval ago
    (`healthCheck.intervalSeconds`, default 300; 0: every cycle), and nothing it was checked against has changed
    since (the distribution as read, the bucket's listing, nothing published or changed this cycle). A publish, an
    invalidation or any drift checks it at once."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._last: dict[str, tuple[float, str]] = {}  # ref -> (when its healthy check ran, what it saw)

    def fresh(self, site: Site) -> bool:
        last = self._last.get(site.spec.ref)
        interval = float((site.spec.spec.get("healthCheck") or {}).get("intervalSeconds", DEFAULT_SITE_INTERVAL_S))
        return (last is not None and self.clock() - last[0] < interval and not site.published_now
                and last[1] == _seen(site))

    def checked(self, sites: list[Site], results: list[SiteResult]) -> None:
        by_name = {r.distribution: r for r in results}
        for site in sites:
            result = by_name.get(site.spec.name)
            if result is not None and result.status == "healthy":
                self._last[site.spec.ref] = (self.clock(), _seen(site))
            else:
                self._last.pop(site.spec.ref, None)


def _seen(site: Site) -> str:
    """What a check of `site` was made against: the distribution and the bucket as read (their listing)."""
    remote = site.bucket_live.extra.get("remote") if site.bucket_live is not None else None
    return dumps([site.live.state if site.live else None, site.live.pending if site.live else None,
                  site.bucket_live.state if site.bucket_live else None,
                  sorted(remote.etags.items()) if remote is not None else None], sort_keys=True)


def check_clusters(clusters: list[Spec], aws: Aws | None, endpoint: str | None = None, *, tls: bool | None = None,
                   ca_file: str | None = None) -> list[RedisResult]:
    """The Redis check of each cluster (`endpoint`, `tls`, `ca_file`: `reconciler health`'s flags)."""
    return [check_cluster(spec, aws, endpoint, tls=tls, ca_file=ca_file) for spec in clusters]


def sites_now(spec_set: SpecSet, sites: list[Spec], aws: Aws) -> list[Site]:
    """Each Distribution spec's distribution and bucket, observed now (`reconciler health`)."""
    out = []
    for spec in sites:
        distribution = registry.get("Distribution")(spec)
        buckets = [b for b in spec_set.by_kind("Bucket") if b.name == distribution.bucket]
        bucket_live = registry.get("Bucket")(buckets[0]).observe(aws) if buckets else None
        out.append(Site(spec, distribution, distribution.observe(aws), bucket_live))
    return out


def check_sites(sites: list[Site], aws: Aws, *, durations: ExpectedDurations, records: Records | None = None,
                ca_file: str | None = None) -> list[SiteResult]:
    """The site check of each; `ca_file` (--ca-file) verifies the edge's certificate, as it does Redis's;
    `records` keeps the last publishes' records between cycles (one GetObject per new ETag)."""
    edge, factor = sandbox_edge(), aws_time_factor()
    if ca_file:
        edge = dataclasses.replace(edge or Edge(), ca_file=ca_file)
    results = []
    for site in sites:
        if site.skipped:
            results.append(SiteResult(site.spec.name, None, skipped=site.skipped))
            continue
        try:
            facts = facts_of(site.distribution, site.live, site.bucket_live, aws, records,
                             published_now=site.published_now)
        except Exception as exc:  # the record could not be read: the check says so, the others go on
            results.append(SiteResult(site.spec.name, None, error=describe_failure(exc, site.spec.ref, "reading "
                                                                                   "for the site check"),
                                      cause="the last publish's record could not be read"))
            continue
        results.append(check_site(site.spec, facts, aws, edge=edge, durations=durations, factor=factor))
    return results


def facts_of(distribution: Any, dist_live: Any, bucket_live: Any, aws: Any,
             cache: dict[str, tuple[str, dict[str, Any] | None]] | None = None, *,
             published_now: bool = False) -> SiteFacts | None:
    """The check's facts from the planned (or observed) Live of the distribution and its bucket. The last publish's
    record is read once per ETag of it (`cache`: bucket -> (ETag, record)). `published_now`: the bucket's content
    was published after that Live was read (this cycle's apply): its listing is read again, so the edge is
    compared with what the bucket holds now."""
    if dist_live is None or not dist_live.extra.get("domain"):
        return None
    remote = bucket_live.extra.get("remote") if bucket_live is not None else None
    if published_now:
        remote = read_remote(aws.client("s3"), distribution.bucket)
    published = dict(remote.etags) if remote is not None else {}
    marker = getattr(remote, "last_publish_etag", None) if remote is not None else None
    bucket = distribution.bucket
    record = None
    if marker is not None:
        kept = (cache or {}).get(bucket)
        if kept is not None and kept[0] == marker:
            record = kept[1]
        else:
            record = read_last_publish(aws.client("s3"), bucket)
            if cache is not None:
                cache[bucket] = (marker, record)
    return SiteFacts(dist_live.id, dist_live.extra["domain"], dist_live.extra.get("config") or {}, bucket, published,
                     record)


