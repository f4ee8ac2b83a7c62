"""What a reconcile found and did, recorded: each resource's state and message for /status and the page, the
events (drift, failures, health) with their deduplication, and the metrics. Written once here; the loop only
hands over the plan, the apply report and the health results."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from .events import Event
from .status import StatusStore, now_iso

if TYPE_CHECKING:
    from ..aws import Aws
    from ..engine.apply import ApplyReport, Outcome
    from ..engine.plan import Change, Plan
    from ..health import HealthResult

log = structlog.get_logger()

SHOWN_FIELDS = ("drifted", "paused", "window-blocked", "pending", "waiting", "error")


def state_of(change: Change, outcome: Outcome | None, backoff_s: float) -> tuple[str, str | None]:
    """in-sync | drifted | pending | waiting | paused | window-blocked | error, and why."""
    if change.action == "error":
        return "error", change.error
    if outcome is not None:
        if outcome.status == "applied":
            return "in-sync", None
        if outcome.status == "pending":
            return "pending", outcome.message
        if outcome.status == "refused":
            return "drifted", f"refused: {outcome.message}"
        if outcome.status == "waiting":
            return "waiting", outcome.message
        return "error", outcome.message
    if change.is_change:
        if change.operator_paused:
            return "paused", "paused on the agent's page (POST /actions/resume to resume)"
        if change.paused:
            return "paused", "metadata.paused: observed, not changed"
        if change.window:
            return "window-blocked", f"held by {change.window}"
        if change.waiting:
            return "waiting", change.waiting
        if backoff_s:
            return "error", f"failed before; retrying in {backoff_s:.0f}s"
        return "drifted", ("policy: observe" if change.policy == "observe" else None)
    if change.live and change.live.pending:
        return "pending", change.live.pending
    return "in-sync", None


class Recorder:
    """Turns a reconcile's plan and outcomes into the store's entries, events and metrics."""

    def __init__(self, store: StatusStore, notify_after: int = 1):
        self.store = store
        self.notify_after = notify_after  # drift is reported once it has lasted this many reconciles
        self._drift: dict[str, str] = {}  # ref -> the drift last reported
        self._drift_seen: dict[str, tuple[str, int]] = {}  # ref -> (drift, reconciles seen in a row)
        self._last_change: dict[str, dict[str, str]] = {}  # ref -> when and what the agent last applied
        self._unhealthy: set[str] = set()

    def resources(self, plan: Plan, report: ApplyReport, leader: bool, order: list[str],
                  backoff: Callable[[str], float]) -> dict[str, str]:
        """Record each planned resource; returns ref -> state."""
        entries = {c.ref: self._entry(c, report, leader, backoff(c.ref)) for c in plan.changes}
        self.store.put_resources(entries, order)
        metric = self.store.metrics.resources
        metric.clear()
        for (kind, state), n in self.store.state_counts().items():
            metric.labels(kind=kind, state=state).set(n)
        if plan.unmanaged is not None or plan.inventory_error:
            self.store.update(unmanaged=[o.to_json() for o in plan.unmanaged] if plan.unmanaged is not None
                              else {"error": plan.inventory_error})
        return {ref: entry["state"] for ref, entry in entries.items()}

    def _entry(self, change: Change, report: ApplyReport, leader: bool, backoff_s: float) -> dict[str, Any]:
        outcome = next((o for o in report.outcomes if o.change.ref == change.ref), None)
        state, message = state_of(change, outcome, backoff_s)
        if not leader and state == "drifted" and change.applicable:
            message = f"left to the lease holder ({(self.store.get('lease') or {}).get('holder')})"
        metrics = self.store.metrics
        if change.is_change:
            metrics.drift.labels(kind=change.kind).inc()
        self._outcome_events(change, outcome)
        if outcome and outcome.status == "applied":
            self._last_change[change.ref] = {"time": now_iso(), "action": change.action}
            metrics.changes.labels(kind=change.kind, action=change.action).inc()
        elif state == "error":
            metrics.errors.labels(kind=change.kind).inc()
        since = change.live.pending_since if change.live and state == "pending" else None
        fields = [f.to_json() for f in change.fields] if state in SHOWN_FIELDS else []
        self._report_drift(change, state, fields)
        return {"kind": change.kind, "name": change.name, "state": state, "action": change.action,
                "policy": change.policy, **({"message": message} if message else {}),
                **({"pendingSince": since} if since else {}), **({"fields": fields} if fields else {}),
                **({"changed": True} if outcome and outcome.status == "applied" else {}),
                **({"lastChange": self._last_change[change.ref]} if change.ref in self._last_change else {}),
                **({"retryInSeconds": round(backoff_s)} if backoff_s and state == "error" else {})}

    def _report_drift(self, change: Change, state: str, fields: list[dict[str, Any]]) -> None:
        """`drift.detected` once when a resource's drift appears or changes (the fields, secrets masked);
        the drift that apply corrects is logged by apply itself."""
        reported = state in ("drifted", "paused", "window-blocked") and fields
        signature = json.dumps(fields, sort_keys=True, default=str) if reported else None
        revision = self.store.get("lastAppliedRevision")
        if signature:  # --notify-after: how many reconciles in a row this drift has been seen
            previous, seen = self._drift_seen.get(change.ref, ("", 0))
            self._drift_seen[change.ref] = (signature, seen + 1 if previous == signature else 1)
            if self._drift_seen[change.ref][1] < self.notify_after:
                return
        else:
            self._drift_seen.pop(change.ref, None)
        events = self.store.events
        if signature and self._drift.get(change.ref) != signature and change.window:
            log.warning("window.blocked", kind=change.kind, name=change.name, window=change.window, fields=fields)
            events.emit(Event("window.blocked", change.kind, change.name, f"drift held by {change.window}",
                              revision=revision, fields=fields))
        elif signature and self._drift.get(change.ref) != signature:
            log.warning("drift.detected", kind=change.kind, name=change.name, policy=change.policy, fields=fields)
            why = ("paused" if change.paused else "policy: observe" if change.policy == "observe"
                   else change.refused or "not applied")
            events.emit(Event("drift.detected", change.kind, change.name, f"drifted ({why})", revision=revision,
                              fields=fields))
        if signature:
            self._drift[change.ref] = signature
        elif self._drift.pop(change.ref, None):
            events.clear("drift.detected", change.kind, change.name)
            events.clear("window.blocked", change.kind, change.name)

    def _outcome_events(self, change: Change, outcome: Outcome | None) -> None:
        """drift.corrected for a drift the agent fixed; apply.failed for a failure (once, until it clears)."""
        revision = self.store.get("lastAttemptedRevision")
        if outcome is None:
            return
        events = self.store.events
        if outcome.status == "failed":
            events.emit(Event("apply.failed", change.kind, change.name, outcome.message, revision=revision))
            return
        if outcome.status == "applied":
            events.clear("apply.failed", change.kind, change.name)
            if change.action in ("update", "adopt", "replace"):
                events.emit(Event("drift.corrected", change.kind, change.name, f"{change.action} applied",
                                  revision=revision, fields=[f.to_json() for f in change.effective_fields]))

    def calls(self, aws: Aws, calls: Any = None) -> None:
        """Add a reconcile's calls (or `calls`) and the background ones since last time to the metrics."""
        metrics = self.store.metrics
        made = aws.call_counts() if calls is None else calls
        for (service, operation), n in (made + aws.take_background_counts()).items():
            metrics.api_calls.labels(service=service, operation=operation).inc(n)
        counts = aws.take_limit_counts()
        for service, n in counts["throttles"].items():
            metrics.throttles.labels(service=service).inc(n)
        for service, n in counts["rate_limited"].items():
            metrics.rate_limited.labels(service=service).inc(n)
        for service, seconds in counts["rate_limit_wait_s"].items():
            metrics.rate_limit_wait.labels(service=service).inc(seconds)

    def health(self, results: list[HealthResult], clusters: list[str]) -> None:
        metrics = self.store.metrics
        for r in results:
            metrics.redis_healthy.labels(cluster=r.cluster).set(-1 if r.skipped else int(r.healthy))
            for step in r.steps:
                metrics.redis_latency.labels(cluster=r.cluster, step=step.name).set(step.ms / 1000)
            self._health_events(r)
            event = "health.skipped" if r.skipped else ("health.ok" if r.healthy else "health.failed")
            log.log(20 if r.healthy else 40, event, cluster=r.cluster, status=r.status, error=r.error,
                    cause=r.cause, total_ms=round(r.total_ms, 1))
        self.store.put_health([r.to_json() for r in results], clusters)

    def _health_events(self, result: HealthResult) -> None:
        revision = self.store.get("lastAttemptedRevision")
        events = self.store.events
        if result.skipped:
            return
        if not result.healthy:
            events.emit(Event("health.degraded", "CacheCluster", result.cluster,
                              f"{result.error}; likely cause: {result.cause}", revision=revision))
            self._unhealthy.add(result.cluster)
        elif result.cluster in self._unhealthy:
            self._unhealthy.discard(result.cluster)
            events.clear("health.degraded", "CacheCluster", result.cluster)
            events.emit(Event("health.recovered", "CacheCluster", result.cluster, "healthy again",
                              revision=revision))
