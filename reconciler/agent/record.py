"""What a reconcile found and did, recorded: each resource's state and message for /status and the page, the
events (drift, failures, health) with their deduplication, and the metrics. Written once here; the loop only
hands over the plan, the apply report and the health results."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import structlog

from reconciler.agent.ledger import Ledger, Operation
from reconciler.agent.serve.status import StatusStore, now_iso
from reconciler.agent.tell.events import Event
from reconciler.agent.who_changed import WhoChanged, touch_json
from reconciler.aws.expected_durations import ExpectedDurations
from reconciler.core.plainjson import dumps
from reconciler.core.vocabulary import Action, OutcomeStatus, ResourceState

if TYPE_CHECKING:
    from reconciler.agent.watch import ChangeEvent
    from reconciler.aws.client import Aws
    from reconciler.checks.redis import RedisResult
    from reconciler.checks.site import SiteResult
    from reconciler.engine.apply import ApplyReport, Outcome
    from reconciler.engine.changes import Change, Plan

log = structlog.get_logger()



def state_of(change: Change, outcome: Outcome | None) -> tuple[ResourceState, str | None]:
    """The resource's state after this reconcile, and why."""
    if change.action == Action.ERROR:
        return ResourceState.ERROR, change.error
    if outcome is not None:
        if outcome.status == OutcomeStatus.APPLIED:
            return ResourceState.IN_SYNC, None
        if outcome.status == OutcomeStatus.PENDING:
            return ResourceState.PENDING, outcome.message
        if outcome.status == OutcomeStatus.REFUSED:
            return ResourceState.DRIFTED, f"refused: {outcome.message}"
        if outcome.status == OutcomeStatus.WAITING:
            return ResourceState.WAITING, outcome.message
        return ResourceState.ERROR, outcome.message
    if change.is_change:
        if change.operator_paused:
            return ResourceState.PAUSED, "paused on the agent's page (POST /actions/resume to resume)"
        if change.paused:
            return ResourceState.PAUSED, "metadata.paused: observed, not changed"
        if change.window:
            return ResourceState.WINDOW_BLOCKED, f"held by {change.window}"
        if change.waiting:
            return ResourceState.WAITING, change.waiting
        return ResourceState.DRIFTED, ("policy: observe" if change.policy == "observe" else None)
    if change.live and change.live.pending:
        return ResourceState.PENDING, change.live.pending
    return ResourceState.IN_SYNC, None


class Recorder:
    """Turns a reconcile's plan and outcomes into the store's entries, events and metrics.

    Events say what happened (docs/events.md): `sync.applied` for a change a spec asked for, `drift.detected`
    and `drift.corrected` for a resource that left what the agent last made it (corrected: when AWS has
    finished, with how long it took), `operation.slow` for work AWS takes unusually long over. The ledger
    (what each resource last converged to, the operations open) tells them apart and survives restarts.
    """

    def __init__(self, store: StatusStore, notify_after: int = 1, ledger: Ledger | None = None,
                 durations: ExpectedDurations | None = None, trail: WhoChanged | None = None, look_s: float = 0.0):
        self.store = store
        self.notify_after = notify_after  # drift is reported once it has lasted this many reconciles
        self.ledger = ledger or Ledger()
        self.durations = durations or ExpectedDurations()
        self.trail = trail  # who changed a drifted resource (CloudTrail); None: not looked up
        self.look_s = look_s  # how soon the agent looks again at work in progress (--pending-interval)
        self._drift: dict[str, str] = {}  # ref -> the drift last reported
        self._drift_seen: dict[str, tuple[str, int]] = {}  # ref -> (drift, reconciles seen in a row)
        self._last_change: dict[str, dict[str, str]] = {}  # ref -> when and what the agent last applied
        self._who: dict[str, dict[str, Any]] = {}  # ref -> who made its drift (until it converges)
        self._asked: set[str] = set()  # drifted refs looked up once already (until they converge)
        self._unhealthy: set[str] = set()

    def resources(self, plan: Plan, report: ApplyReport, leader: bool, order: list[str]) -> dict[str, str]:
        """Record each planned resource; returns ref -> state."""
        outcomes = {o.change.ref: o for o in report.outcomes}
        causes = {c.ref: self.ledger.cause(c) for c in plan.changes if c.is_change}
        self._look_up_who([c for c in plan.changes if causes.get(c.ref) == "drift"
                           or (c.is_change and c.action != Action.CREATE and not c.applicable)])
        entries = {c.ref: self._entry(c, outcomes.get(c.ref), causes.get(c.ref), leader) for c in plan.changes}
        self.store.put_resources(entries, order)
        self.ledger.forget(set(order))
        self.ledger.flush()
        metric = self.store.metrics.resources
        metric.clear()
        for (kind, state), n in self.store.state_counts().items():
            metric.labels(kind=kind, state=state).set(n)
        if plan.unmanaged is not None or plan.inventory_error:
            self.store.update(unmanaged=[o.to_json() for o in plan.unmanaged] if plan.unmanaged is not None
                              else {"error": plan.inventory_error})
        return {ref: entry["state"] for ref, entry in entries.items()}

    def heard(self, touch: ChangeEvent) -> None:
        """AWS's change event named who changed a resource (--watch-events): no lookup needed for it."""
        self._who[touch.ref] = touch_json(touch)

    def who_changed(self) -> dict[str, str]:
        """ref -> who changed it, in words (the write-back commit's lines)."""
        return {ref: f"{w['principal']} ({w['call']}, {w.get('time', 'unknown time')})" for ref, w in self._who.items()}

    def _look_up_who(self, drifted: list[Change]) -> None:
        """Who changed the resources newly found drifted (one CloudTrail lookup per service, not per cycle)."""
        new = [c for c in drifted if c.ref not in self._who and c.ref not in self._asked]
        if self.trail is None or not new:
            return
        self._asked.update(c.ref for c in new)
        found = self.trail.who(new)
        for change in new:
            touch = found.get(change.ref)
            if touch is not None:
                self._who[change.ref] = touch_json(touch)
                log.info("drift.who", kind=change.kind, name=change.name, **self._who[change.ref])

    def _entry(self, change: Change, outcome: Outcome | None, cause: str | None, leader: bool) -> dict[str, Any]:
        state, message = state_of(change, outcome)
        if outcome is not None and outcome.status == OutcomeStatus.APPLIED and outcome.work:  # AWS carries it out
            state, message = ResourceState.PENDING, f"applied; AWS is carrying it out ({outcome.work})"
        if not leader and state == ResourceState.DRIFTED and change.applicable:
            message = f"left to the lease holder ({(self.store.get('lease') or {}).get('holder')})"
        metrics = self.store.metrics
        if change.is_change:
            metrics.drift.labels(kind=change.kind).inc()
        if outcome is not None and outcome.status == OutcomeStatus.FAILED:
            self.store.events.emit(Event("apply.failed", change.kind, change.name, outcome.message,
                                         revision=self.store.get("lastAttemptedRevision")))
        elif outcome is not None and outcome.status in (OutcomeStatus.APPLIED, OutcomeStatus.PENDING):
            self.store.events.clear("apply.failed", change.kind, change.name)
            self._made(change, outcome, cause or "sync")
        if outcome and outcome.status == OutcomeStatus.APPLIED:
            self._last_change[change.ref] = {"time": now_iso(), "action": change.action}
            metrics.changes.labels(kind=change.kind, action=change.action).inc()
        elif state == ResourceState.ERROR:
            metrics.errors.labels(kind=change.kind).inc()
        if state == ResourceState.IN_SYNC:
            self._converged(change)
        since = change.live.pending_since if change.live and state == ResourceState.PENDING else None
        fields = [f.to_json() for f in change.fields] if state.shows_fields else []
        if cause == "drift" or not change.applicable:
            self._report_drift(change, state, fields)
        progress = self._progress(change) if state == ResourceState.PENDING else None
        operation = self.ledger.get(change.ref) if state == ResourceState.PENDING else None
        who = self._who.get(change.ref) or (operation.who if operation else None)
        return {"kind": change.kind, "name": change.name, "state": state, "action": change.action,
                "policy": change.policy, **({"message": message} if message else {}),
                **({"pendingSince": since} if since else {}), **({"fields": fields} if fields else {}),
                **({"changed": True} if outcome and outcome.status == OutcomeStatus.APPLIED else {}),
                **({"lastChange": self._last_change[change.ref]} if change.ref in self._last_change else {}),
                **({"progress": progress} if progress else {}), **({"changedBy": who} if who else {})}

    def _made(self, change: Change, outcome: Outcome, cause: str) -> None:
        """A change sent to AWS: announced by its cause; one AWS still carries out is remembered as open."""
        events, revision = self.store.events, self.store.get("lastAttemptedRevision")
        fields = [f.to_json() for f in change.effective_fields]
        open_before = self.ledger.get(change.ref)
        if cause == "drift" and open_before is None:
            who = self._who.get(change.ref)
            log.warning("drift.detected", kind=change.kind, name=change.name, fields=fields,
                        **({"who": who} if who else {}))
            events.emit(Event("drift.detected", change.kind, change.name, "drifted; correcting", revision=revision,
                              fields=fields, who=who))
        elif cause != "drift" and not (cause == "create" and change.action != Action.CREATE):
            log.info("sync.applied", kind=change.kind, name=change.name, action=change.action, revision=revision)
            events.emit(Event("sync.applied", change.kind, change.name, f"{change.action} applied",
                              revision=revision, fields=fields, action=change.action))
        if outcome.status == OutcomeStatus.PENDING or outcome.work:
            over = self.ledger.started(change.ref, Operation(
                cause=cause, action=change.action, started=time.time() - outcome.duration_s, revision=revision,
                fields=fields, work=outcome.work, work_started=outcome.started, who=self._who.get(change.ref)),
                busy=bool(change.live and change.live.pending))
            if over is not None:
                self.durations.observed(*over)
        elif cause == "drift" and open_before is None:  # AWS made it at once: corrected now
            self._corrected(change, fields, outcome.duration_s, self._who.get(change.ref))

    def _converged(self, change: Change) -> None:
        """In sync: remembered as converged; the operation that got it there is closed, its duration learnt,
        and a drift correction announced now that AWS has finished it."""
        done = self.ledger.converge(change, self.store.get("lastAttemptedRevision"), now_iso())
        self._who.pop(change.ref, None)
        self._asked.discard(change.ref)
        if done is None:
            return
        if done.cause == "drift" and done.who is None and self.trail is not None:  # CloudTrail may have it by now
            touch = self.trail.who([change]).get(change.ref)
            done.who = touch_json(touch) if touch else None
        now = time.time()
        if done.work and done.work_started:
            self.durations.observed(done.work, now - done.work_started)
        log.info("operation.finished", kind=change.kind, name=change.name, cause=done.cause, action=done.action,
                 work=done.work, duration_s=round(now - done.started, 1))
        if done.cause == "drift":
            self._corrected(change, done.fields, now - done.started, done.who)

    def _corrected(self, change: Change, fields: list[dict[str, Any]], seconds: float,
                   who: dict[str, Any] | None) -> None:
        events = self.store.events
        log.info("drift.corrected", kind=change.kind, name=change.name, duration_s=round(seconds, 1))
        events.emit(Event("drift.corrected", change.kind, change.name, f"corrected; AWS took {seconds:.0f}s",
                          revision=self.store.get("lastAttemptedRevision"), fields=fields, who=who,
                          durationSeconds=round(seconds, 1)))
        events.clear("drift.detected", change.kind, change.name)
        events.clear("drift.corrected", change.kind, change.name)
        self.store.metrics.correction_seconds.observe(seconds)

    def _progress(self, change: Change) -> dict[str, Any] | None:
        """How long AWS's work on it has run against how long it usually takes; `operation.slow` once past
        1.5 x its p90."""
        operation = self.ledger.get(change.ref)
        if operation is None or not operation.work or not operation.work_started:
            return None
        expected = self.durations.expected(operation.work)
        elapsed = time.time() - operation.work_started
        slow_after = expected.slow_after(self.look_s)
        progress = {"since": operation.work_started, **expected.to_json(), "slowAfterSeconds": round(slow_after, 1)}
        if elapsed > slow_after and self.ledger.mark_slow(change.ref):
            shown = {**expected.to_json(), "elapsedSeconds": round(elapsed, 1)}
            log.warning("operation.slow", kind=change.kind, name=change.name, **shown)
            self.store.events.emit(Event(
                "operation.slow", change.kind, change.name,
                f"{expected.work} has run {elapsed:.0f}s; AWS usually takes {expected.seconds:.0f}s "
                f"(p90 {expected.p90:.0f}s, {expected.source})", revision=self.store.get("lastAttemptedRevision"),
                progress=shown))
        return progress

    def _report_drift(self, change: Change, state: str, fields: list[dict[str, Any]]) -> None:
        """Drift the agent does not correct (observe, paused, a window, a follower): `drift.detected` once when
        it appears or changes (the fields, secrets masked, who made it)."""
        reported = state in (ResourceState.DRIFTED, ResourceState.PAUSED, ResourceState.WINDOW_BLOCKED) and fields
        signature = dumps(fields, sort_keys=True) if reported else None
        revision = self.store.get("lastAppliedRevision")
        if signature:  # --notify-after: how many reconciles in a row this drift has been seen
            previous, seen = self._drift_seen.get(change.ref, ("", 0))
            self._drift_seen[change.ref] = (signature, seen + 1 if previous == signature else 1)
            if self._drift_seen[change.ref][1] < self.notify_after:
                return
        else:
            self._drift_seen.pop(change.ref, None)
        events = self.store.events
        who = self._who.get(change.ref)
        if signature and self._drift.get(change.ref) != signature and change.window:
            log.warning("window.blocked", kind=change.kind, name=change.name, window=change.window, fields=fields)
            events.emit(Event("window.blocked", change.kind, change.name, f"drift held by {change.window}",
                              revision=revision, fields=fields, who=who))
        elif signature and self._drift.get(change.ref) != signature:
            log.warning("drift.detected", kind=change.kind, name=change.name, policy=change.policy, fields=fields,
                        **({"who": who} if who else {}))
            why = ("paused" if change.paused else "policy: observe" if change.policy == "observe"
                   else change.refused or "not applied")
            events.emit(Event("drift.detected", change.kind, change.name, f"drifted ({why})", revision=revision,
                              fields=fields, who=who))
        if signature:
            self._drift[change.ref] = signature
        elif self._drift.pop(change.ref, None):
            events.clear("drift.detected", change.kind, change.name)
            events.clear("window.blocked", change.kind, change.name)

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

    def health(self, results: list[RedisResult], clusters: list[str]) -> None:
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

    def site(self, results: list[SiteResult], distributions: list[str]) -> None:
        """The site checks of this cycle: metrics, events (health.degraded / health.recovered), the store."""
        metrics = self.store.metrics
        for r in results:
            metrics.site_healthy.labels(distribution=r.distribution).set(
                {"skipped": -1, "healthy": 1, "stale": 0.5}.get(r.status, 0))
            for step in r.steps:
                metrics.site_latency.labels(distribution=r.distribution, step=step.name).set(step.ms / 1000)
            self._site_events(r)
            log.log(40 if r.error else 30 if r.stale else 20, f"site.{r.status}", distribution=r.distribution,
                    domain=r.domain, error=r.error, cause=r.cause, stale=r.stale, total_ms=round(r.total_ms, 1))
        self.store.put_site([r.to_json() for r in results], distributions)

    def _site_events(self, result: SiteResult) -> None:
        revision = self.store.get("lastAttemptedRevision")
        events, key = self.store.events, f"Distribution/{result.distribution}"
        if result.skipped:
            return
        if result.error:
            events.emit(Event("health.degraded", "Distribution", result.distribution,
                              f"{result.error}; likely cause: {result.cause}", revision=revision))
            self._unhealthy.add(key)
        elif key in self._unhealthy:
            self._unhealthy.discard(key)
            events.clear("health.degraded", "Distribution", result.distribution)
            events.emit(Event("health.recovered", "Distribution", result.distribution,
                              "the site is served as published again" + (f" (stale, on its way out: {result.stale})"
                                                                         if result.stale else ""),
                              revision=revision))

    def _health_events(self, result: RedisResult) -> None:
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
