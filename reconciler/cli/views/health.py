"""`reconciler health`'s views: a block per cluster and per site, a line per step with its latency (text), or
one JSON document of every result."""

from __future__ import annotations

from reconciler.checks.redis import RedisResult
from reconciler.checks.site import SiteResult
from reconciler.checks.steps import CheckResult, CheckStep
from reconciler.core.plainjson import dumps


def health_text(clusters: list[RedisResult], sites: list[SiteResult]) -> str:
    return "\n".join([*redis_lines(clusters), *site_lines(sites)])


def health_json(clusters: list[RedisResult], sites: list[SiteResult]) -> str:
    return dumps({"clusters": [r.to_json() for r in clusters], "distributions": [r.to_json() for r in sites]},
                 indent=2)


HEALTH_VIEWS = {"text": health_text, "json": health_json}


def redis_lines(results: list[RedisResult]) -> list[str]:
    """One block per cluster, a line per step with its latency."""
    lines = []
    for r in results:
        lines.append(f"CacheCluster/{r.cluster}  {r.endpoint or '-'}  {r.status.upper()}")
        lines += [f"  {_mark(s)} {s.name:<5} {s.ms:8.1f} ms" + (f"  {s.detail}" if s.detail else "") for s in r.steps]
        lines += _outcome_lines(r)
    return lines


def site_lines(results: list[SiteResult]) -> list[str]:
    """One block per distribution: its steps, the paths that are not current, why it is stale."""
    lines = []
    for r in results:
        lines.append(f"Distribution/{r.distribution}  {r.domain or '-'}  {r.status.upper()}")
        lines += [f"  {_mark(s)} {s.name:<8} {s.ms:8.1f} ms  {s.detail}".rstrip() for s in r.steps]
        lines += [f"  {p.state:<7} {p.path}: {p.detail}" for p in r.paths if p.state != "current"]
        if r.stale and not r.error and not r.skipped:
            lines.append(f"  stale, not failing: {r.stale}")
        lines += _outcome_lines(r)
    return lines


def _mark(step: CheckStep) -> str:
    return "ok  " if step.ok else "FAIL"


def _outcome_lines(result: CheckResult) -> list[str]:
    """Why it was skipped, or what failed (unless its last step says it) and the likely cause."""
    lines = [f"  skipped: {result.skipped}"] if result.skipped else []
    if result.error:
        if not result.steps or result.steps[-1].ok:
            lines.append(f"  FAIL {result.error}")
        lines.append(f"  likely cause: {result.cause}")
    return lines
