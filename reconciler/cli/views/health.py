"""`reconciler health`'s views: a block per cluster and per site, a line per step with its latency (text), or
one JSON document of every result."""

from __future__ import annotations

from reconciler.checks.redis import RedisResult
from reconciler.checks.site import SiteResult
from reconciler.core.plainjson import dumps


def health_text(clusters: list[RedisResult], sites: list[SiteResult]) -> str:
    return "\n".join([*redis_lines(clusters), *site_lines(sites)])


def health_json(clusters: list[RedisResult], sites: list[SiteResult]) -> str:
    return dumps({"clusters": [r.to_json() for r in clusters], "distributions": [r.to_json() for r in sites]},
                 indent=2)


HEALTH_VIEWS = {"text": health_text, "json": health_json}


def redis_lines(results: list[RedisResult]) -> list[str]:
    """Human output: one block per cluster, a line per step with its latency."""
    lines = []
    for r in results:
        lines.append(f"CacheCluster/{r.cluster}  {r.endpoint or '-'}  {r.status.upper()}")
        for s in r.steps:
            mark = "ok  " if s.ok else "FAIL"
            detail = f"  {s.detail}" if s.detail else ""
            lines.append(f"  {mark} {s.name:<5} {s.ms:8.1f} ms{detail}")
        if r.skipped:
            lines.append(f"  skipped: {r.skipped}")
        if r.error:
            if not r.steps or r.steps[-1].ok:
                lines.append(f"  FAIL {r.error}")
            lines.append(f"  likely cause: {r.cause}")
    return lines


def site_lines(results: list[SiteResult]) -> list[str]:
    """The lines `reconciler health` prints for the distributions."""
    lines = []
    for r in results:
        lines.append(f"Distribution/{r.distribution}  {r.domain or '-'}  {r.status.upper()}")
        for s in r.steps:
            lines.append(f"  {'ok  ' if s.ok else 'FAIL'} {s.name:<8} {s.ms:8.1f} ms  {s.detail}".rstrip())
        for p in r.paths:
            if p.state != "current":
                lines.append(f"  {p.state:<7} {p.path}: {p.detail}")
        if r.skipped:
            lines.append(f"  skipped: {r.skipped}")
        if r.stale and not r.error:
            lines.append(f"  stale, not failing: {r.stale}")
        if r.error:
            if not r.steps or r.steps[-1].ok:
                lines.append(f"  FAIL {r.error}")
            lines.append(f"  likely cause: {r.cause}")
    return lines
