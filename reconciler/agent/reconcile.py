"""One reconcile of a batch of resources: the spec set read (git or a directory), the batch planned (reads in
bulk), applied under the lease, recorded, and each resource's next look decided (controller-runtime's
Reconcile returning `requeue after`).

Rules (also in docs/agent.md):
- A commit whose specs fail to load is reported (file, line, revision) and nothing from it is used. With
  git, drift correction goes on at the last good revision, re-read from git at that commit; in a plain
  directory, the reconcile stops before any AWS call. Either way a broken commit never deletes anything.
- A new revision reconciles every resource; otherwise only the batch (what is due).
- A resource that fails is looked at again after a backoff (the interval, doubling, capped) without
  holding back the others; one AWS is still working on is looked at after --pending-interval.
- With a lease, only the agent holding it applies; the others observe and report.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from reconciler.agent.config import AgentConfig
from reconciler.agent.ledger import Ledger
from reconciler.agent.record import Recorder
from reconciler.agent.serve.status import StatusStore, now_iso
from reconciler.agent.source import GitSource
from reconciler.agent.tell.events import Event
from reconciler.agent.who import Trail
from reconciler.agent.writeback import BranchWriter, Published
from reconciler.aws.client import describe_failure, wants_traceback
from reconciler.aws.expected import Durations
from reconciler.checks.redis import RedisResult
from reconciler.checks.run import Site, check_clusters, check_sites
from reconciler.checks.site import SiteResult
from reconciler.core.errors import ReconcilerError, SpecError, SpecProblem
from reconciler.core.vocabulary import Action, ResourceState, Result
from reconciler.engine.apply import ApplyReport, apply_plan
from reconciler.engine.changes import Change, Plan
from reconciler.engine.lease import Heartbeat, Lease, keep
from reconciler.engine.load import interval_of, load_specs
from reconciler.engine.plan import enforce_budget, enforce_windows, make_plan
from reconciler.engine.writeback import uncorrected_fields, write_back
from reconciler.spec.documents import Spec, SpecSet
from reconciler.spec.windows import windows_of

if TYPE_CHECKING:
    from reconciler.agent.source import DirectorySource
    from reconciler.aws.client import Aws

log = structlog.get_logger()

ALL = "*"  # the queue's ref for "every resource of the spec set" (the first look, "reconcile now")


@dataclass
class BatchResult:
    ok: bool
    healthy: bool | None = None  # None: no health check ran
    error: str | None = None
    refs: list[str] = field(default_factory=list)          # every resource of the spec set now
    requeue: dict[str, float] = field(default_factory=dict)  # ref -> seconds until it is looked at again
    states: dict[str, ResourceState] = field(default_factory=dict)  # ref -> its state after this reconcile
    results: dict[str, str] = field(default_factory=dict)    # ref -> applied | pending | failed | in-sync | ...
    api_calls: int = 0
    plan: Plan | None = None        # what was planned and done (the closing report of `run --once`)
    report: ApplyReport | None = None


class Backoff:
    """Per-resource exponential backoff: after n failures in a row, base * 2^(n-1), capped."""

    def __init__(self, base_s: float, cap_s: float):
        self.base_s, self.cap_s = base_s, cap_s
        self.failures: dict[str, int] = {}
        self.retry_at: dict[str, float] = {}

    def waiting(self, ref: str) -> float:
        """Seconds until `ref` is tried again (0 = not backing off)."""
        return max(0.0, self.retry_at.get(ref, 0.0) - time.monotonic())

    def failed(self, ref: str) -> float:
        n = self.failures[ref] = self.failures.get(ref, 0) + 1
        delay = min(self.base_s * 2 ** (n - 1), self.cap_s)
        self.retry_at[ref] = time.monotonic() + delay
        return delay

    def succeeded(self, ref: str) -> None:
        self.failures.pop(ref, None)
        self.retry_at.pop(ref, None)


class Reconciler:
    """Reconciles batches of resource refs; owns what must be remembered between them."""

    def __init__(self, config: AgentConfig, source: DirectorySource | GitSource, aws: Aws, store: StatusStore, *,
                 lease: Lease | None = None, writer: BranchWriter | None = None, stop: threading.Event | None = None):
        self.config, self.source, self.aws, self.store = config, source, aws, store
        self.lease, self.writer = lease, writer
        self.stop = stop or threading.Event()
        self.changed_by: dict[str, str] = {}  # ref -> who changed it last, where AWS said (its change events)
        kept = store.events.path.parent if store.events.path else None  # the state directory
        self.recorder = Recorder(store, config.notify_after, Ledger(kept / "ledger.json" if kept else None),
                                 Durations(kept / "durations.json" if kept else None), Trail(aws),
                                 look_s=config.pending_s)
        self.backoff = Backoff(config.interval_s, config.backoff_max_s)
        self.latest: dict[str, Change] = {}  # ref -> its last planned change (dependencies, events, write-back)
        self.last_results: dict[str, tuple[str, int]] = {}  # ref -> (its last result, the calls of that reconcile)
        self.specs: SpecSet | None = None
        self.last_good: str | None = None
        self.last_success: float | None = None
        self.lease_on_demand = False  # --once: take the lease only when there is something to apply
        self.heartbeat: Heartbeat | None = None
        self._role: str | None = None
        self._publish_records: dict[str, Any] = {}  # bucket -> (ETag, record) of its last publish (site checks)
        self._revision: str | None = None

    # ------------------------------------------------------------------ one batch

    def reconcile(self, refs: Iterable[str]) -> BatchResult:
        """Reconcile these refs (ALL: every one); never raises (every failure is reported)."""
        started = time.monotonic()
        asked = list(refs)
        self.store.started()
        try:
            result = self._reconcile(asked)
        except ReconcilerError as exc:
            log.error("cycle.error", error=str(exc))
            result = self._failed(asked, str(exc))
        except Exception as exc:  # never let a bug kill the daemon; say it loudly, as ours
            message = describe_failure(exc, "the cycle", "running")
            log.exception("cycle.crashed", error=message)
            result = self._failed(asked, message)
        duration = time.monotonic() - started
        self._watch_progress(result)
        metrics = self.store.metrics
        metrics.cycles.labels(result="ok" if result.ok else "error").inc()
        metrics.cycle_duration.observe(duration)
        metrics.last_cycle.set_to_current_time()
        planned = [r for r in result.states if r in result.refs]
        self.store.finished({"finished": now_iso(), "durationSeconds": round(duration, 3),
                             "result": "ok" if result.ok else "error", "error": result.error,
                             "healthy": result.healthy, "resources": len(planned),
                             "changes": sum(1 for r in planned if (self.store.resource(r) or {}).get("changed")),
                             "errors": sum(1 for r in planned if result.states[r] == ResourceState.ERROR)})
        pending = sorted(r for r, state in result.states.items() if state == ResourceState.PENDING)
        log.info("cycle.done", ok=result.ok, healthy=result.healthy, duration_ms=round(duration * 1000),
                 resources=len(planned), **({"pending": pending} if pending else {}))
        structlog.contextvars.unbind_contextvars("revision", "attempted_revision")
        return result

    def _failed(self, asked: list[str], error: str) -> BatchResult:
        known = list(self.latest) or asked
        return BatchResult(ok=False, error=error, refs=known,
                           requeue=dict.fromkeys(asked, self.config.interval_s * self._jitter()))

    def _reconcile(self, asked: list[str]) -> BatchResult:
        revision = self.source.fetch()
        structlog.contextvars.bind_contextvars(revision=revision)
        self._source_error(self.source.fetch_error)
        self.store.update(lastAttemptedRevision=revision, commit=self.source.describe(revision))
        spec_set, applied_revision = self._load(revision)
        if spec_set is None:
            return self._failed(asked, "specs failed to load; nothing applied")
        every = [s.ref for s in spec_set.specs if self._is_resource(s.kind)]
        new_revision = applied_revision != self._revision
        refs = every if ALL in asked or new_revision else \
            [r for r in every if r in asked or r not in self.latest]  # what is due, and what is new
        self._revision, self.specs = applied_revision, spec_set
        self._windows(spec_set)
        self.aws.reset_counts()
        plan = self._plan(spec_set, refs)
        if self.stop.is_set():
            return BatchResult(ok=True, error="stopped", refs=every)
        leader = self._may_apply(plan)
        report = (apply_plan(plan, self.aws, should_stop=self._should_stop, known=self.latest) if leader
                  else ApplyReport())
        self.latest = {ref: c for ref, c in {**self.latest, **{c.ref: c for c in plan.changes}}.items()
                       if ref in every}
        self.recorder.calls(self.aws)
        calls = sum(self.aws.call_counts().values())
        self.store.update(apiCalls=calls)
        results = _results(plan, report)
        self.last_results.update({ref: (result, calls) for ref, result in results.items()})
        states = self.recorder.resources(plan, report, leader, every)
        if self.writer is not None and applied_revision == revision and (leader or self.lease_on_demand):
            self._write_back(spec_set, revision)
        health = [] if self.stop.is_set() else self._check_health(spec_set, refs)
        ok = report.ok and not any(c.action == Action.ERROR for c in plan.changes)
        if ok and leader and applied_revision == revision:
            self.store.update(lastAppliedRevision=revision)
            self.store.metrics.revision.info({"revision": revision})
        requeue = self._requeue(spec_set, states)
        for ref, state in states.items():
            if state == ResourceState.ERROR:  # said beside the error: when it is tried again
                self.store.annotate(ref, retryInSeconds=round(requeue[ref]))
        return BatchResult(ok=ok and self.store.get("specError") is None, healthy=_verdict(health), refs=every,
                           requeue=requeue, states=states, results=results, api_calls=calls, plan=plan, report=report)

    def _plan(self, spec_set: SpecSet, refs: list[str]) -> Plan:
        plan = make_plan(spec_set, self.aws, workers=self.config.workers, only=refs,
                         known={r: c for r, c in self.latest.items() if r not in refs})
        plan = enforce_windows(enforce_budget(plan, self.config.max_destroy), spec_set)
        for change in plan.changes:
            change.operator_paused = change.ref in self.store.paused
        return plan

    @staticmethod
    def _is_resource(kind: str) -> bool:
        from reconciler.kinds import registry

        return kind in registry.kinds()

    def _requeue(self, spec_set: SpecSet, states: dict[str, str]) -> dict[str, float]:
        """When each resource of the batch is looked at again: soon while AWS works or it waits for another,
        after its backoff when it failed, else after its interval (metadata.interval, or --interval)."""
        jitter = self._jitter()
        by_ref = {s.ref: s for s in spec_set.specs}
        out = {}
        for ref, state in states.items():
            if state.settling:
                out[ref] = self.config.pending_s
                self.backoff.succeeded(ref)
            elif state == ResourceState.ERROR:
                out[ref] = self.backoff.failed(ref)
            else:
                self.backoff.succeeded(ref)
                own = interval_of(by_ref[ref]) if ref in by_ref else None
                out[ref] = (own or self.config.interval_s) * jitter
        return out

    def _jitter(self) -> float:
        return 1 + random.uniform(0, self.config.jitter)  # spreading load, not security

    # ------------------------------------------------------------------ the spec set

    def _load(self, revision: str) -> tuple[SpecSet | None, str | None]:
        """The spec set at `revision`, or at the last good one when it is broken (git only)."""
        try:
            spec_set = load_specs(self.source.checkout(revision), self.source.root)
            same_environment(self.config.environment, spec_set)
        except SpecError as exc:
            problems = [{"file": p.file, "line": p.line, "field": p.path, "message": p.message}
                        for p in exc.problems]
            for p in problems:
                log.error("specs.invalid", **p)
            self.store.metrics.spec_errors.inc()
            self.store.update(specError={"revision": revision, "problems": problems})
            first = exc.problems[0]
            self.store.events.emit(Event("spec.invalid", None, None, f"{first}" + (
                f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""), revision=revision))
            if self.source.supports_fallback and self.last_good and self.last_good != revision:
                log.warning("specs.fallback", last_good=self.last_good,
                            reason="the new revision is broken; drift correction continues at the last good one")
                # what this reconcile does from here on, it does at the last good revision: say that one
                structlog.contextvars.bind_contextvars(revision=self.last_good, attempted_revision=revision)
                return load_specs(self.source.checkout(self.last_good), self.source.root), self.last_good
            return None, None
        self.last_good = revision
        self.store.events.clear("spec.invalid", None, None)
        self.store.update(specError=None)
        return spec_set, revision

    def _source_error(self, error: str | None) -> None:
        """A spec source that cannot be reached now: said in the log and /status; the reconcile goes on
        with the revision last fetched."""
        previous = self.store.get("sourceError")
        if error:
            since = previous["since"] if previous and previous["error"] == error else now_iso()
            self.store.update(sourceError={"error": error, "since": since})
            log.warning("git.fetch_failed", error=error, effect="reconciling the revision last fetched")
        else:
            self.store.update(sourceError=None)
            if previous:
                log.info("git.fetch_recovered")

    def _windows(self, spec_set: SpecSet) -> None:
        """The change windows, open (until when) or closed (next opening), for /status and the page."""
        now = datetime.now(UTC)
        shown = []
        for window in windows_of(spec_set.specs):
            until = window.open_until(now)
            shown.append({"name": window.name, "type": window.type, "open": until is not None,
                          **({"until": until.isoformat(timespec="minutes")} if until
                             else {"next": window.next_open(now).isoformat(timespec="minutes")})})
        self.store.update(windows=shown)

    # ------------------------------------------------------------------ the lease, stopping

    def _may_apply(self, plan: Plan) -> bool:
        """True when this agent may write: no lease configured, or it holds the lease."""
        if self.lease is None:
            return True
        if self.lease_on_demand and self.heartbeat is None and any(c.applicable for c in plan.changes):
            self.heartbeat = keep(self.lease, wait=True)
        info = self.lease.describe()
        leader = info["role"] == "leader"
        self.store.update(lease=info)
        self.store.metrics.lease_leader.set(int(leader))
        if info["role"] != self._role:
            if leader:
                log.info("lease.leader", lease=self.lease.name, owner=self.lease.owner, effect="this agent applies")
            else:
                log.warning("lease.follower", lease=self.lease.name, holder=info["holder"],
                            effect="observing only; the holder applies")
            self._role = info["role"]
        return leader

    def may_consume_events(self) -> bool:
        return self.lease is None or self.lease.held or self.lease_on_demand

    def _should_stop(self) -> bool:
        """Stop applying between two resources on a signal, or when the lease ran out."""
        if self.stop.is_set():
            return True
        if self.lease is not None and not self.lease.held:
            log.error("apply.stopped", reason="the lease was lost or could not be renewed in time")
            self.store.events.emit(Event("lease.lost", None, None, "the lease was lost or could not be renewed in "
                                         "time: applying stopped", revision=self.store.get("lastAttemptedRevision")))
            return True
        return False

    def _watch_progress(self, result: BatchResult) -> None:
        """agent.stuck when nothing has succeeded for `stuck_after` intervals (cleared by a success)."""
        now = time.monotonic()
        if result.ok:
            self.last_success = now
            self.store.events.clear("agent.stuck", None, None)
            return
        since = self.last_success or self.store.started_at
        if now - since >= self.config.stuck_after * self.config.interval_s:
            self.store.events.emit(Event("agent.stuck", None, None, f"no cycle has succeeded for {now - since:.0f}s "
                                         f"({self.config.stuck_after} intervals); last error: {result.error}",
                                         revision=self.store.get("lastAttemptedRevision")))

    # ------------------------------------------------------------------ after the apply

    def _write_back(self, spec_set: SpecSet, revision: str) -> None:
        """The drift the agent does not correct, of every resource as last planned, as one commit on the
        write-back branch (never raises)."""
        assert self.writer is not None and isinstance(self.source, GitSource) and self.source.root is not None
        try:
            result = write_back(Plan(list(self.latest.values())), spec_set,
                                self.source.root / self.source.specs_path, self.aws, relative_to=self.source.root,
                                fields=uncorrected_fields)
            published = self.writer.publish(result, revision, {**self.recorder.who_changed(), **self.changed_by})
        except Exception as exc:
            ours = isinstance(exc, ReconcilerError)  # git refused, or the branch is someone else's
            message = str(exc) if ours else describe_failure(exc, "the write-back branch", "writing")
            log.error("writeback.error", branch=self.writer.branch, error=message,
                      exc_info=not ours and wants_traceback(exc))
            published = Published(self.writer.branch, "error", error=message)
        self.store.update(writeBack=published.to_json())

    def _check_health(self, spec_set: SpecSet, refs: list[str]) -> list[RedisResult | SiteResult]:
        clusters = spec_set.by_kind("CacheCluster")
        results = check_clusters([spec for spec in clusters if spec.ref in refs], self.aws)
        self.recorder.health(results, [c.name for c in clusters])
        distributions = spec_set.by_kind("Distribution")
        due = [self._site(spec) for spec in distributions if spec.ref in refs and spec.ref in self.latest]
        if not due:
            return results
        sites = check_sites(due, self.aws, durations=self.recorder.durations, records=self._publish_records)
        self.recorder.site(sites, [d.name for d in distributions])
        return [*results, *sites]

    def _site(self, spec: Spec) -> Site:
        """A Distribution's site check from what this cycle planned (no AWS read of its own but the last publish's
        record when it changed, and invalidations when content is stale)."""
        change = self.latest[spec.ref]
        waiting = _not_serving_yet(change)
        if waiting:
            return Site(spec, skipped=waiting)
        bucket = self.latest.get(f"Bucket/{change.resource.bucket}")
        return Site(spec, change.resource, change.live, bucket.live if bucket else None,
                    published_now=bucket is not None and bucket.applicable)  # this cycle's apply may have published


def same_environment(started: Any, spec_set: SpecSet) -> None:
    """Refuse a revision whose environment is not the one the agent was started for (its name, account, role
    or Region changed): the account was checked at start; a new one needs a new start."""
    now = spec_set.environment
    before = (started.name, started.aws) if started is not None else None
    after = (now.name, now.aws) if now is not None else None
    if before != after:
        said = f"environment {started.name!r} ({started.aws})" if started is not None else "no environment"
        where = now.file if now is not None else (spec_set.files[0] if spec_set.files else "?")
        raise SpecError([SpecProblem(where, 1, "spec.aws", f"the agent was started for {said}; this revision "
                                     "changes that: restart the agent to follow it (drift correction goes on at "
                                     "the last good revision)")])


def _not_serving_yet(change: Change) -> str | None:
    """Why a distribution is not checked this cycle (None: it is): being created, deploying, or unread."""
    if change.live is None:
        return ("being created: checked once AWS has deployed it" if change.action == Action.CREATE
                else f"could not be read this cycle ({change.error or 'no answer'})")
    if change.live.pending:
        return f"AWS is deploying it ({change.live.pending}): checked once it is Deployed"
    if change.applicable:  # what this cycle's apply changed is not what was read before it
        return "changed in this cycle: checked by the next one"
    return None


def _verdict(health: list[RedisResult | SiteResult]) -> bool | None:
    """Healthy or not, from the checks that ran; None when none did (no cache, the sandbox, a stopped cycle)."""
    checked = [h for h in health if not h.skipped]
    return all(h.healthy for h in checked) if checked else None


def _results(plan: Plan, report: ApplyReport) -> dict[str, str]:
    """Each planned resource's result: its apply outcome, or in-sync / not-applied (observe, paused, a follower)."""
    outcomes = {o.change.ref: o.status for o in report.outcomes}
    return {c.ref: outcomes.get(c.ref) or (ResourceState.IN_SYNC if c.action == Action.NOOP else Result.NOT_APPLIED)
            for c in plan.changes}
