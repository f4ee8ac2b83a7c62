"""The agent: reconcile cycles on a schedule, status, metrics, health checks, signals.

Rules (also in docs/agent.md):
- One cycle at a time: a late cycle is coalesced, never stacked (APScheduler,
  max_instances=1, coalesce=True), with jitter on the interval.
- A commit whose specs fail to load is reported (file, line, revision) and nothing from it
  is used. With git, drift correction goes on at the last good revision, re-read from git
  at that commit; in a plain directory, the cycle stops before any AWS call. Either way a
  broken commit never deletes anything.
- A resource that fails is retried with exponential backoff (capped) without holding back
  the others.
- With a lease (the default), only the agent holding it applies; the others observe and report,
  and take over when the holder stops renewing it (see lease.py).
"""

from __future__ import annotations

import collections
import json
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from ..aws import describe_failure, wants_traceback
from ..engine.apply import ApplyReport, Outcome, apply_plan
from ..engine.plan import DEFAULT_MAX_DESTROY, Change, Plan, enforce_budget, enforce_windows, make_plan
from ..engine.windows import windows_of
from ..engine.writeback import uncorrected_fields, write_back
from ..errors import ReconcilerError, SpecError
from ..health import HealthResult, check_cluster
from ..lease import Heartbeat, Lease, keep
from ..loading import load_specs
from ..resources import registry
from ..specs import SpecSet
from .events import Event, Events
from .metrics import Metrics
from .source import GitSource
from .watch import WAIT_S, EventIndex, Poller, Subscription, Touch, regions_for, trail_status
from .writeback import BranchWriter, Published

if TYPE_CHECKING:
    from ..aws import Aws
    from .source import DirectorySource

log = structlog.get_logger()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Backoff:
    """Per-resource exponential backoff: after n failures, wait base * 2^(n-1), capped."""

    base_s: float
    cap_s: float
    failures: dict[str, int] = field(default_factory=dict)
    retry_at: dict[str, float] = field(default_factory=dict)

    def waiting(self, ref: str) -> float:
        """Seconds until `ref` may be tried again (0 = now)."""
        return max(0.0, self.retry_at.get(ref, 0.0) - time.monotonic())

    def failed(self, ref: str) -> None:
        n = self.failures[ref] = self.failures.get(ref, 0) + 1
        self.retry_at[ref] = time.monotonic() + min(self.base_s * 2 ** (n - 1), self.cap_s)

    def succeeded(self, ref: str) -> None:
        self.failures.pop(ref, None)
        self.retry_at.pop(ref, None)


@dataclass
class CycleResult:
    ok: bool
    healthy: bool | None = None  # None: no health check ran (nothing to check, or the cycle stopped early)
    error: str | None = None


class Agent:
    """Runs reconcile cycles and keeps what /status, /metrics and /healthz report."""

    def __init__(self, source: DirectorySource | GitSource, aws: Aws, *, interval_s: float = 300,
                 workers: int = 16, backoff_cap_s: float | None = None, max_destroy: int = DEFAULT_MAX_DESTROY,
                 lease: Lease | None = None, pending_interval_s: float = 30, events: Events | None = None,
                 stuck_after: int = 3, notify_after: int = 1, http_token: str | None = None,
                 writer: BranchWriter | None = None, watch_events: bool = False):
        self.source, self.aws, self.interval_s, self.workers = source, aws, interval_s, workers
        self.pending_interval_s = min(pending_interval_s, interval_s)
        self.events = events or Events(None)
        self.stuck_after = stuck_after  # agent.stuck once no cycle has succeeded for this many intervals
        self.last_success: float | None = None
        self._unhealthy: set[str] = set()
        self.max_destroy, self.lease = max_destroy, lease
        self._role: str | None = None
        self._lease_on_demand = False  # --once: take the lease only when there is something to apply
        self._heartbeat: Heartbeat | None = None
        self.metrics = Metrics()
        self._drift: dict[str, str] = {}  # ref -> the drift last reported
        self._cycles: collections.deque[dict[str, Any]] = collections.deque(maxlen=60)  # for the page's chart
        self._last_change: dict[str, dict[str, str]] = {}  # ref -> when and what the agent last applied
        self.notify_after = notify_after  # drift is reported once it has lasted this many cycles
        self.http_token = http_token      # actions on the HTTP port need it; None: read-only
        self.writer = writer              # --write-back-branch: uncorrected drift as a commit on that branch
        self.changed_by: dict[str, str] = {}  # ref -> who changed it last, where AWS said (its change events)
        self.watch_events = watch_events  # --watch-events: AWS's change events trigger a resource's reconcile
        self._index = EventIndex()        # which resource an event names (from the last cycle's plan)
        self._specs: SpecSet | None = None  # the spec set the last cycle used (an event's reconcile uses it too)
        self._pollers: list[Poller] = []
        self._running = threading.Lock()  # a cycle and an event's reconcile never run at once
        self._paused_file = (events.path.parent / "paused.json") if events and events.path else None
        self.paused: set[str] = self._load_paused()  # refs paused by an operator on the page
        self._drift_cycles: dict[str, tuple[str, int]] = {}  # ref -> (drift, cycles seen in a row)
        self.backoff = Backoff(base_s=interval_s, cap_s=backoff_cap_s or interval_s * 16)
        self.stop = threading.Event()
        self._again = threading.Event()  # a cycle was asked for (SIGHUP, the page) while one ran
        self.lock = threading.Lock()
        self.started_at = time.monotonic()
        self.last_finished: float | None = None
        self.last_good: str | None = None
        self.scheduler: Any = None
        self.status: dict[str, Any] = {"lastAppliedRevision": None, "lastAttemptedRevision": None,
                                       "specError": None, "sourceError": None, "lastCycle": None,
                                       "resources": [], "health": [],
                                       "lease": {"role": "disabled"} if lease is None else lease.describe()}

    # ------------------------------------------------------------------ one cycle

    def cycle(self) -> CycleResult:
        """One reconcile cycle; never raises (every failure is reported)."""
        started = time.monotonic()
        self._again.clear()  # a cycle asked for from here on runs after this one
        try:
            with self._running:
                result = self._cycle()
        except ReconcilerError as exc:
            log.error("cycle.error", error=str(exc))
            result = CycleResult(ok=False, error=str(exc))
        except Exception as exc:  # never let a bug kill the daemon; say it loudly, as ours
            message = describe_failure(exc, "the cycle", "running")
            log.exception("cycle.crashed", error=message)
            result = CycleResult(ok=False, error=message)
        duration = time.monotonic() - started
        self._watch_progress(result)
        self.metrics.cycles.labels(result="ok" if result.ok else "error").inc()
        self.metrics.cycle_duration.observe(duration)
        self.metrics.last_cycle.set_to_current_time()
        with self.lock:
            self.last_finished = time.monotonic()
            self.status["lastCycle"] = {"finished": _now(), "durationSeconds": round(duration, 3),
                                        "result": "ok" if result.ok else "error", "error": result.error,
                                        "healthy": result.healthy}
            changed = sum(1 for r in self.status["resources"] if r.get("changed"))
            errors = sum(1 for r in self.status["resources"] if r["state"] == "error")
            self._cycles.append({**self.status["lastCycle"], "changes": changed, "errors": errors})
            self.status["cycles"] = list(self._cycles)
        pending = self._pending_refs()
        log.info("cycle.done", ok=result.ok, healthy=result.healthy, duration_ms=round(duration * 1000),
                 **({"pending": pending} if pending else {}))
        if self._again.is_set():
            self._requeue(0)
        elif pending:
            self._requeue(self.pending_interval_s)
        structlog.contextvars.unbind_contextvars("revision", "attempted_revision")
        return result

    def _watch_progress(self, result: CycleResult) -> None:
        """agent.stuck when no cycle has succeeded for `stuck_after` intervals (cleared by a success)."""
        now = time.monotonic()
        if result.ok:
            self.last_success = now
            self.events.clear("agent.stuck", None, None)
            return
        since = self.last_success or self.started_at
        if now - since >= self.stuck_after * self.interval_s:
            self.events.emit(Event("agent.stuck", None, None, f"no cycle has succeeded for {now - since:.0f}s "
                                   f"({self.stuck_after} intervals); last error: {result.error}",
                                   revision=self.status.get("lastAttemptedRevision")))

    def _pending_refs(self) -> list[str]:
        with self.lock:
            return [f"{r['kind']}/{r['name']}" for r in self.status["resources"] if r["state"] == "pending"]

    def _requeue(self, delay_s: float) -> None:
        """AWS is still working on something: look again sooner than the interval (ACK's requeue)."""
        if self.scheduler is None or not self.scheduler.running:
            return
        job = self.scheduler.get_job("cycle")
        soon = datetime.now(UTC) + timedelta(seconds=delay_s)
        if job is not None and (job.next_run_time is None or job.next_run_time > soon):
            self.scheduler.modify_job("cycle", next_run_time=soon)

    def _cycle(self) -> CycleResult:
        revision = self.source.fetch()
        structlog.contextvars.bind_contextvars(revision=revision)
        self._record_source_error(self.source.fetch_error)
        commit = self.source.describe(revision)
        with self.lock:
            self.status["lastAttemptedRevision"] = revision
            self.status["commit"] = commit
        spec_set, applied_revision = self._load(revision)
        if spec_set is None:
            return CycleResult(ok=False, error="specs failed to load; nothing applied")
        self._record_windows(spec_set)
        self.aws.reset_counts()
        plan = enforce_windows(enforce_budget(make_plan(spec_set, self.aws, workers=self.workers), self.max_destroy),
                               spec_set)
        for change in plan.changes:
            change.operator_paused = change.ref in self.paused
        self._specs, self._index = spec_set, EventIndex.from_plan(plan)
        if self.stop.is_set():
            return CycleResult(ok=True, error="stopped")
        leader = self._may_apply(plan)
        report = (apply_plan(plan, self.aws, should_stop=self._should_stop, skip=self._deferred) if leader
                  else ApplyReport())
        self._record(plan, report, leader)
        if self.writer is not None and applied_revision == revision and (leader or self._lease_on_demand):
            self._write_back(plan, spec_set, revision)
        health = [] if self.stop.is_set() else self._check_health(spec_set)
        ok = report.ok and not any(c.action == "error" for c in plan.changes)
        if ok and leader and applied_revision == revision:
            with self.lock:
                self.status["lastAppliedRevision"] = revision
            self.metrics.revision.info({"revision": revision})
        return CycleResult(ok=ok and self.status["specError"] is None,
                           healthy=_verdict(health))

    def _write_back(self, plan: Plan, spec_set: SpecSet, revision: str) -> None:
        """The drift the agent does not correct, as one commit on the write-back branch (never raises)."""
        assert self.writer is not None and isinstance(self.source, GitSource) and self.source.root is not None
        try:
            result = write_back(plan, spec_set, self.source.root / self.source.specs_path, self.aws,
                                relative_to=self.source.root, fields=uncorrected_fields)
            published = self.writer.publish(result, revision, self.changed_by)
        except Exception as exc:
            ours = isinstance(exc, ReconcilerError)  # git refused, or the branch is someone else's
            message = str(exc) if ours else describe_failure(exc, "the write-back branch", "writing")
            log.error("writeback.error", branch=self.writer.branch, error=message,
                      exc_info=not ours and wants_traceback(exc))
            published = Published(self.writer.branch, "error", error=message)
        with self.lock:
            self.status["writeBack"] = published.to_json()

    # ------------------------------------------------------------------ AWS's change events

    def start_watching(self) -> None:
        """Subscribe to AWS's change events (queue + rule per Region) and poll them; retried until it works."""
        def subscribe() -> None:
            delay = 5.0
            while not self.stop.is_set():
                try:
                    self._subscribe()
                    return
                except Exception as exc:
                    message = describe_failure(exc, "the event subscription", "setting up")
                    log.error("events.subscribe_failed", error=message, retry_in_s=round(delay))
                    with self.lock:
                        self.status["events"] = {"state": "error", "error": message}
                    self.stop.wait(delay)
                    delay = min(delay * 2, max(self.interval_s, 60))

        threading.Thread(target=subscribe, name="events-subscribe", daemon=True).start()

    def _subscribe(self) -> None:
        name = f"{self.lease.name if self.lease else 'reconciler'}-events"
        sources = sorted({source for cls in registry.classes() for source in cls.event_keys})
        queues = [Subscription(self.aws, name, region).ensure(found)
                  for region, found in regions_for(sources, self.aws.region or "us-east-1").items()]
        trail = trail_status(self.aws)
        if trail["state"] != "logging":
            log.warning("events.no_trail", message=trail["message"])
        self._pollers = [Poller(self.aws, q, lambda: self._index, self.reconcile_touched, self._may_consume,
                                self.metrics, self.stop) for q in queues]
        for poller in self._pollers:
            poller.start()
        with self.lock:
            self.status["events"] = {"state": "watching", "queues": [q.url for q in queues],
                                     "rules": [q.rule_arn for q in queues], "trail": trail}
        log.info("events.watching", queues=[q.url for q in queues], trail=trail["state"])

    def _may_consume(self) -> bool:
        return self.lease is None or self.lease.held or self._lease_on_demand

    def reconcile_touched(self, touches: list[Touch]) -> None:
        """Reconcile the resources AWS's events named, each once, between the scheduled cycles: observe, plan
        and apply only them, under the lease, honouring policy, pause and change windows."""
        refs = sorted({t.ref for t in touches})
        for touch in touches:
            self.changed_by[touch.ref] = touch.describe()
        started = time.monotonic()
        with self._running:
            spec_set = self._specs
            if spec_set is None or self.stop.is_set():
                return
            subset = SpecSet(specs=tuple(s for s in spec_set.specs if s.ref in refs), files=spec_set.files)
            calls_before = self.aws.call_counts()
            plan = enforce_windows(enforce_budget(make_plan(subset, self.aws, workers=self.workers, whole_set=False),
                                                  self.max_destroy), spec_set)
            for change in plan.changes:
                change.operator_paused = change.ref in self.paused
            leader = self._may_apply(plan)
            report = (apply_plan(plan, self.aws, should_stop=self._should_stop, skip=self._deferred) if leader
                      else ApplyReport())
            made = self.aws.call_counts() - calls_before
            calls = sum(made.values())
            self._record_some(plan, report, leader, made)
        results = self._event_results(plan, report, touches)
        if "pending" in results.values() or any(c.live and c.live.pending for c in plan.changes):
            self._requeue(self.pending_interval_s)  # AWS is still at it: look again soon, as after a cycle
        log.info("events.reconciled", resources=refs, results=results, api_calls=calls,
                 duration_ms=round((time.monotonic() - started) * 1000))
        with self.lock:
            watching = self.status.setdefault("events", {})
            watching["lastReconcile"] = {"time": _now(), "resources": refs, "results": results, "apiCalls": calls,
                                         "changedBy": {t.ref: t.describe() for t in touches}}
            watching["received"] = sum(p.received for p in self._pollers)

    def _event_results(self, plan: Plan, report: ApplyReport, touches: list[Touch]) -> dict[str, str]:
        outcomes = {o.change.ref: o for o in report.outcomes}
        results = {}
        for change in plan.changes:
            outcome = outcomes.get(change.ref)
            result = outcome.status if outcome else ("in-sync" if change.action == "noop" else "not-applied")
            results[change.ref] = result
            self.metrics.event_reconciles.labels(kind=change.kind, result=result).inc()
            if result == "applied":
                now = datetime.now(UTC)
                for touch in touches:
                    if touch.ref == change.ref and touch.time is not None:
                        self.metrics.event_latency.observe(max(0.0, (now - touch.time).total_seconds()))
        return results

    def set_paused(self, ref: str, paused: bool) -> None:
        """Pause or resume a resource from the page (kept in the state directory across restarts)."""
        with self.lock:
            (self.paused.add if paused else self.paused.discard)(ref)
            if self._paused_file:
                self._paused_file.parent.mkdir(parents=True, exist_ok=True)
                self._paused_file.write_text(json.dumps(sorted(self.paused)))
        log.warning("resource.paused" if paused else "resource.resumed", resource=ref, by="the HTTP action")
        self.cycle_now()

    def _load_paused(self) -> set[str]:
        try:
            return set(json.loads(self._paused_file.read_text())) if self._paused_file else set()
        except (OSError, ValueError):
            return set()

    def _record_windows(self, spec_set: SpecSet) -> None:
        """The change windows, open (until when) or closed (next opening), for /status and the page."""
        now = datetime.now(UTC)
        shown = []
        for window in windows_of(spec_set.specs):
            until = window.open_until(now)
            shown.append({"name": window.name, "type": window.type, "open": until is not None,
                          **({"until": until.isoformat(timespec="minutes")} if until
                             else {"next": window.next_open(now).isoformat(timespec="minutes")})})
        with self.lock:
            self.status["windows"] = shown

    def _record_source_error(self, error: str | None) -> None:
        """A spec source that cannot be reached now: said in the log and /status; the cycle goes on
        with the revision last fetched."""
        with self.lock:
            previous = self.status.get("sourceError")
            if error:
                since = previous["since"] if previous and previous["error"] == error else _now()
                self.status["sourceError"] = {"error": error, "since": since}
            else:
                self.status["sourceError"] = None
        if error:
            log.warning("git.fetch_failed", error=error, effect="reconciling the revision last fetched")
        elif previous:
            log.info("git.fetch_recovered")

    def _load(self, revision: str) -> tuple[SpecSet | None, str | None]:
        """The spec set at `revision`, or at the last good one when it is broken (git only)."""
        try:
            spec_set = load_specs(self.source.checkout(revision), self.source.root)
        except SpecError as exc:
            problems = [{"file": p.file, "line": p.line, "field": p.path, "message": p.message}
                        for p in exc.problems]
            for p in problems:
                log.error("specs.invalid", **p)
            self.metrics.spec_errors.inc()
            with self.lock:
                self.status["specError"] = {"revision": revision, "problems": problems}
            first = exc.problems[0]
            self.events.emit(Event("spec.invalid", None, None, f"{first}" + (
                f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""), revision=revision))
            if self.source.supports_fallback and self.last_good and self.last_good != revision:
                log.warning("specs.fallback", last_good=self.last_good,
                            reason="the new revision is broken; drift correction continues at the last good one")
                # what this cycle does from here on, it does at the last good revision: say that one
                structlog.contextvars.bind_contextvars(revision=self.last_good, attempted_revision=revision)
                return load_specs(self.source.checkout(self.last_good), self.source.root), self.last_good
            return None, None
        self.last_good = revision
        self.events.clear("spec.invalid", None, None)
        with self.lock:
            self.status["specError"] = None
        return spec_set, revision

    def _may_apply(self, plan: Plan) -> bool:
        """True when this agent may write: no lease configured, or it holds the lease."""
        if self.lease is None:
            return True
        if self._lease_on_demand and self._heartbeat is None and any(c.applicable for c in plan.changes):
            self._heartbeat = keep(self.lease, wait=True)
        info = self.lease.describe()
        leader = info["role"] == "leader"
        with self.lock:
            self.status["lease"] = info
        self.metrics.lease_leader.set(int(leader))
        if info["role"] != self._role:
            if leader:
                log.info("lease.leader", lease=self.lease.name, owner=self.lease.owner, effect="this agent applies")
            else:
                log.warning("lease.follower", lease=self.lease.name, holder=info["holder"],
                            effect="observing only; the holder applies")
            self._role = info["role"]
        return leader

    def _should_stop(self) -> bool:
        """Stop applying between two resources on a signal, or when the lease ran out."""
        if self.stop.is_set():
            return True
        if self.lease is not None and not self.lease.held:
            log.error("apply.stopped", reason="the lease was lost or could not be renewed in time")
            self.events.emit(Event("lease.lost", None, None, "the lease was lost or could not be renewed in time: "
                                   "applying stopped", revision=self.status.get("lastAttemptedRevision")))
            return True
        return False

    def run_once(self) -> CycleResult:
        """One cycle; when it has changes to apply and a lease is configured, they are applied
        only while holding the lease (waiting up to one lease duration for a silent holder)."""
        self._lease_on_demand = True
        try:
            return self.cycle()
        finally:
            if self._heartbeat is not None:
                self._heartbeat.stop()
                self._heartbeat = None

    def _deferred(self, change: Change) -> bool:
        wait = self.backoff.waiting(change.ref)
        if wait and change.applicable:
            log.info("apply.deferred", kind=change.kind, name=change.name, retry_in_s=round(wait))
            return True
        return False

    def _record(self, plan: Plan, report: ApplyReport, leader: bool = True) -> None:
        self._record_calls()
        counts: dict[tuple[str, str], int] = {}
        resources = [self._entry(change, report, leader, counts) for change in plan.changes]
        self.metrics.resources.clear()
        for (kind, state), n in counts.items():
            self.metrics.resources.labels(kind=kind, state=state).set(n)
        with self.lock:
            self.status["resources"] = resources
            self.status["apiCalls"] = sum(self.aws.call_counts().values())
            self.status["unmanaged"] = ([o.to_json() for o in plan.unmanaged] if plan.unmanaged is not None
                                        else {"error": plan.inventory_error})

    def _record_some(self, plan: Plan, report: ApplyReport, leader: bool, calls: collections.Counter[Any]) -> None:
        """Record the resources of a partial plan (an event's reconcile) and its `calls`; the others' entries
        stay."""
        self._record_calls(calls)
        entries = {f"{e['kind']}/{e['name']}": e for e in
                   (self._entry(change, report, leader, {}) for change in plan.changes)}
        with self.lock:
            self.status["resources"] = [entries.get(f"{r['kind']}/{r['name']}", r) for r in self.status["resources"]]

    def _entry(self, change: Change, report: ApplyReport, leader: bool, counts: dict[tuple[str, str], int]
               ) -> dict[str, Any]:
        """One resource's /status entry after a plan (and apply), with its metrics and events."""
        outcome = next((o for o in report.outcomes if o.change.ref == change.ref), None)
        state, message = _state_of(change, outcome, self.backoff.waiting(change.ref))
        if not leader and state == "drifted" and change.applicable:
            message = f"left to the lease holder ({self.status['lease'].get('holder')})"
        if change.is_change:
            self.metrics.drift.labels(kind=change.kind).inc()
        self._outcome_events(change, outcome)
        if outcome and outcome.status == "applied":
            self._last_change[change.ref] = {"time": _now(), "action": change.action}
            self.metrics.changes.labels(kind=change.kind, action=change.action).inc()
            self.backoff.succeeded(change.ref)
        elif state == "error":
            self.metrics.errors.labels(kind=change.kind).inc()
            if outcome:
                self.backoff.failed(change.ref)
        elif change.action == "noop":
            self.backoff.succeeded(change.ref)
        counts[(change.kind, state)] = counts.get((change.kind, state), 0) + 1
        since = change.live.pending_since if change.live and state == "pending" else None
        shown = ("drifted", "paused", "window-blocked", "pending", "waiting", "error")
        fields = [f.to_json() for f in change.fields] if state in shown else []
        self._report_drift(change, state, fields)
        waiting = self.backoff.waiting(change.ref)
        return {"kind": change.kind, "name": change.name, "state": state, "action": change.action,
                "policy": change.policy, **({"message": message} if message else {}),
                **({"pendingSince": since} if since else {}), **({"fields": fields} if fields else {}),
                **({"changed": True} if outcome and outcome.status == "applied" else {}),
                **({"lastChange": self._last_change[change.ref]} if change.ref in self._last_change else {}),
                **({"retryInSeconds": round(waiting)} if waiting else {})}

    def _report_drift(self, change: Change, state: str, fields: list[dict[str, Any]]) -> None:
        """`drift.detected` once when a resource's drift appears or changes (the fields, secrets masked);
        the drift that apply corrects is logged by apply itself."""
        reported = state in ("drifted", "paused", "window-blocked") and fields
        signature = json.dumps(fields, sort_keys=True, default=str) if reported else None
        if signature:  # --notify-after: how many cycles in a row this drift has been seen
            previous, seen = self._drift_cycles.get(change.ref, ("", 0))
            self._drift_cycles[change.ref] = (signature, seen + 1 if previous == signature else 1)
            if self._drift_cycles[change.ref][1] < self.notify_after:
                return
        else:
            self._drift_cycles.pop(change.ref, None)
        if signature and self._drift.get(change.ref) != signature and change.window:
            log.warning("window.blocked", kind=change.kind, name=change.name, window=change.window, fields=fields)
            self.events.emit(Event("window.blocked", change.kind, change.name, f"drift held by {change.window}",
                                   revision=self.status.get("lastAppliedRevision"), fields=fields))
        elif signature and self._drift.get(change.ref) != signature:
            log.warning("drift.detected", kind=change.kind, name=change.name, policy=change.policy, fields=fields)
            why = ("paused" if change.paused else "policy: observe" if change.policy == "observe"
                   else change.refused or "not applied")
            self.events.emit(Event("drift.detected", change.kind, change.name, f"drifted ({why})",
                                   revision=self.status.get("lastAppliedRevision"), fields=fields))
        if signature:
            self._drift[change.ref] = signature
        elif self._drift.pop(change.ref, None):
            self.events.clear("drift.detected", change.kind, change.name)
            self.events.clear("window.blocked", change.kind, change.name)

    def _outcome_events(self, change: Change, outcome: Outcome | None) -> None:
        """drift.corrected for a drift the agent fixed; apply.failed for a failure (once, until it clears)."""
        revision = self.status.get("lastAttemptedRevision")
        if outcome is None:
            return
        if outcome.status == "failed":
            self.events.emit(Event("apply.failed", change.kind, change.name, outcome.message, revision=revision))
            return
        if outcome.status == "applied":
            self.events.clear("apply.failed", change.kind, change.name)
            if change.action in ("update", "adopt", "replace"):
                self.events.emit(Event("drift.corrected", change.kind, change.name, f"{change.action} applied",
                                       revision=revision, fields=[f.to_json() for f in change.effective_fields]))

    def _record_calls(self, calls: collections.Counter[Any] | None = None) -> None:
        """Add the cycle's calls (or `calls`) and the background ones since last time to the metrics."""
        made = self.aws.call_counts() if calls is None else calls
        for (service, operation), n in (made + self.aws.take_background_counts()).items():
            self.metrics.api_calls.labels(service=service, operation=operation).inc(n)
        counts = self.aws.take_limit_counts()
        for service, n in counts["throttles"].items():
            self.metrics.throttles.labels(service=service).inc(n)
        for service, n in counts["rate_limited"].items():
            self.metrics.rate_limited.labels(service=service).inc(n)
        for service, seconds in counts["rate_limit_wait_s"].items():
            self.metrics.rate_limit_wait.labels(service=service).inc(seconds)

    def _check_health(self, spec_set: SpecSet) -> list[HealthResult]:
        results = [check_cluster(spec, self.aws) for spec in spec_set.by_kind("CacheCluster")]
        for r in results:
            self.metrics.redis_healthy.labels(cluster=r.cluster).set(-1 if r.skipped else int(r.healthy))
            for step in r.steps:
                self.metrics.redis_latency.labels(cluster=r.cluster, step=step.name).set(step.ms / 1000)
            self._health_events(r)
            event = "health.skipped" if r.skipped else ("health.ok" if r.healthy else "health.failed")
            log.log(20 if r.healthy else 40, event, cluster=r.cluster, status=r.status, error=r.error,
                    cause=r.cause, total_ms=round(r.total_ms, 1))
        with self.lock:
            self.status["health"] = [r.to_json() for r in results]
        return results

    def _health_events(self, result: HealthResult) -> None:
        revision = self.status.get("lastAttemptedRevision")
        if result.skipped:
            return
        if not result.healthy:
            self.events.emit(Event("health.degraded", "CacheCluster", result.cluster,
                                   f"{result.error}; likely cause: {result.cause}", revision=revision))
            self._unhealthy.add(result.cluster)
        elif result.cluster in self._unhealthy:
            self._unhealthy.discard(result.cluster)
            self.events.clear("health.degraded", "CacheCluster", result.cluster)
            self.events.emit(Event("health.recovered", "CacheCluster", result.cluster, "healthy again",
                                   revision=revision))

    # ------------------------------------------------------------------ reporting

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {**self.status, "intervalSeconds": self.interval_s, "actions": self.http_token is not None,
                    "pausedByOperator": sorted(self.paused)}

    def alive(self) -> bool:
        """/healthz: the scheduler runs and the last cycle finished within three intervals
        (plus 30 s of grace for a slow cycle), or the agent has just started."""
        if self.scheduler is not None and not self.scheduler.running:
            return False
        reference = self.last_finished or self.started_at
        return time.monotonic() - reference <= 3 * self.interval_s + 30

    # ------------------------------------------------------------------ the daemon

    def cycle_now(self) -> None:
        """Start a cycle now; when one is running, right after it."""
        self._again.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.modify_job("cycle", next_run_time=datetime.now(UTC))

    def run_forever(self, http_host: str, http_port: int | None, jitter_s: float) -> int:
        """Cycles on a schedule until SIGTERM/SIGINT; SIGHUP triggers a cycle now."""
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.interval import IntervalTrigger

        from .http import serve

        heartbeat = keep(self.lease, wait=False, on_acquired=self.cycle_now) if self.lease else None
        server = serve(self, http_host, http_port) if http_port is not None else None
        scheduler = self.scheduler = BackgroundScheduler(timezone=UTC)
        scheduler.add_job(self.cycle, IntervalTrigger(seconds=self.interval_s, jitter=jitter_s), id="cycle",
                          max_instances=1, coalesce=True, misfire_grace_time=None,
                          next_run_time=datetime.now(UTC))
        wake = threading.Event()

        def on_stop(signum: int, _: Any) -> None:
            log.info("agent.stopping", signal=signal.Signals(signum).name)
            self.stop.set()
            wake.set()

        def on_hup(signum: int, _: Any) -> None:
            log.info("agent.sighup", action="cycle now")
            self.cycle_now()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
        scheduler.start()
        if self.watch_events:
            self.start_watching()
        log.info("agent.started", interval_s=self.interval_s, http_port=http_port)
        while not wake.wait(1):
            pass
        scheduler.shutdown(wait=True)  # the running cycle stops between two resources
        for poller in self._pollers:
            poller.join(timeout=WAIT_S + 5)
        self.events.close()
        if heartbeat is not None:
            heartbeat.stop()  # and release the lease, so a follower takes over at once
        if server:
            server.shutdown()
        log.info("agent.stopped")
        return 0


def _state_of(change: Change, outcome: Outcome | None, backoff_s: float) -> tuple[str, str | None]:
    """in-sync | drifted | pending | error, and why."""
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
        if backoff_s:
            return "error", f"failed before; retrying in {backoff_s:.0f}s"
        return "drifted", ("policy: observe" if change.policy == "observe" else None)
    if change.live and change.live.pending:
        return "pending", change.live.pending
    return "in-sync", None


def _verdict(health: list[HealthResult]) -> bool | None:
    """Healthy or not, from the checks that ran; None when none did (no cache, the sandbox, a stopped cycle)."""
    checked = [h for h in health if not h.skipped]
    return all(h.healthy for h in checked) if checked else None


def state_dir_default() -> Path:
    import os

    return Path(os.environ.get("RECONCILER_STATE_DIR") or Path.home() / ".cache" / "reconciler")
