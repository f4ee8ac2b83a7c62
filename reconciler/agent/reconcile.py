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

from reconciler.agent.backoff import Backoff
from reconciler.agent.config import AgentConfig
from reconciler.agent.ledger import Ledger
from reconciler.agent.record import Recorder
from reconciler.agent.record_cycle import CycleRecorder
from reconciler.agent.serve.status import StatusStore
from reconciler.agent.source import GitSource
from reconciler.agent.who_changed import WhoChanged
from reconciler.agent.writeback_branch import BranchWriter, Published
from reconciler.aws.expected_durations import ExpectedDurations
from reconciler.aws.failures import describe_failure, wants_traceback
from reconciler.checks.redis import RedisResult
from reconciler.checks.run import Site, SiteChecks, check_clusters, check_sites
from reconciler.checks.site import SiteResult
from reconciler.core.errors import ReconcilerError, SpecError, SpecProblem
from reconciler.core.vocabulary import Action, ResourceState, Result
from reconciler.engine.apply import ApplyReport, apply_plan
from reconciler.engine.changes import Change, Plan
from reconciler.engine.lease import Heartbeat, Lease, hold_lease
from reconciler.engine.load import interval_of, load_specs
from reconciler.engine.plan import enforce_budget, enforce_windows, make_plan
from reconciler.engine.writeback import uncorrected_fields, write_back
from reconciler.spec.documents import Spec, SpecSet
from reconciler.spec.windows import windows_status

if TYPE_CHECKING:
    from reconciler.agent.source import DirectorySource
    from reconciler.agent.watch import ChangeEvent
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


@dataclass
class Reconciled:
    """What a reconcile's planning and applying did, for the handler to record."""

    spec_set: SpecSet
    revision: str
    applied_revision: str          # the last good one when `revision` is broken (git)
    every: list[str]               # every resource of the spec set
    refs: list[str]                # those planned now
    plan: Plan
    leader: bool = False
    report: ApplyReport | None = None  # None: stopped before applying
    calls: int = 0


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
                                 ExpectedDurations(kept / "durations.json" if kept else None), WhoChanged(aws),
                                 look_s=config.pending_s)
        self.cycle = CycleRecorder(store, config)
        self.backoff = Backoff(config.interval_s, config.backoff_max_s)
        self.latest: dict[str, Change] = {}  # ref -> its last planned change (dependencies, events, write-back)
        self.last_results: dict[str, tuple[str, int]] = {}  # ref -> (its last result, the calls of that reconcile)
        self.specs: SpecSet | None = None
        self.last_good: str | None = None
        self.lease_on_demand = False  # --once: take the lease only when there is something to apply
        self.heartbeat: Heartbeat | None = None
        self._publish_records: dict[str, Any] = {}  # bucket -> (ETag, record) of its last publish (site checks)
        self._site_checks = SiteChecks()
        self._revision: str | None = None

    # ------------------------------------------------------------------ what the daemon asks of it

    def declares(self, ref: str) -> bool:
        """`ref` is a resource of the spec set as last read."""
        return self.specs is not None and ref in {s.ref for s in self.specs.specs}

    def heard(self, touch: ChangeEvent) -> None:
        """AWS's change event named this resource: who changed it, for the record and the write-back."""
        self.changed_by[touch.ref] = touch.describe()
        self.recorder.heard(touch)

    def last_result(self, ref: str) -> tuple[str, int]:
        """A resource's last result, and the calls of that reconcile."""
        return self.last_results.get(ref, ("unknown", 0))

    def known_changes(self) -> list[Change]:
        """Every resource's last planned change (the event index is built from them)."""
        return list(self.latest.values())

    def reconcile_once(self) -> BatchResult:
        """One reconcile of every resource, taking the lease only when there is something to apply (`run
        --once`), and letting it go after."""
        self.lease_on_demand = True
        try:
            return self.reconcile([ALL])
        finally:
            if self.heartbeat is not None:
                self.heartbeat.stop()
                self.heartbeat = None

    # ------------------------------------------------------------------ one batch: the handler

    def reconcile(self, refs: Iterable[str]) -> BatchResult:
        """Reconcile these refs (ALL: every one); never raises (every failure is reported). This handler alone
        records what the reconcile's phases return: each resource's state, the checks, the cycle's end."""
        started = time.monotonic()
        asked = list(refs)
        self.cycle.started()
        try:
            result = self._handle(asked)
        except ReconcilerError as exc:
            log.error("cycle.error", error=str(exc))
            result = self._failed(asked, str(exc))
        except Exception as exc:  # never let a bug kill the daemon; say it loudly, as ours
            message = describe_failure(exc, "the cycle", "running")
            log.exception("cycle.crashed", error=message)
            result = self._failed(asked, message)
        self.cycle.finished(result.ok, result.error, result.healthy, result.states, result.refs,
                            time.monotonic() - started)
        structlog.contextvars.unbind_contextvars("revision", "attempted_revision")
        return result

    def _handle(self, asked: list[str]) -> BatchResult:
        done = self._plan_and_apply(asked)
        if done is None:
            return self._failed(asked, "specs failed to load; nothing applied")
        if done.report is None:
            return BatchResult(ok=True, error="stopped", refs=done.every)
        results = _results(done.plan, done.report)
        self.last_results.update({ref: (result, done.calls) for ref, result in results.items()})
        states = self.recorder.resources(done.plan, done.report, done.leader, done.every)
        self._after_apply(done)
        healthy = self._checks(done)
        ok = done.report.ok and not done.plan.has_errors
        if ok and done.leader and done.applied_revision == done.revision:
            self.cycle.applied(done.revision)
        requeue = self._requeue(done.spec_set, states)
        self.cycle.retries(states, requeue)
        return BatchResult(ok=ok and not self.cycle.spec_broken, healthy=healthy, refs=done.every, requeue=requeue,
                           states=states, results=results, api_calls=done.calls, plan=done.plan, report=done.report)

    def _failed(self, asked: list[str], error: str) -> BatchResult:
        known = list(self.latest) or asked
        return BatchResult(ok=False, error=error, refs=known,
                           requeue=dict.fromkeys(asked, self.config.interval_s * self._jitter()))

    # ------------------------------------------------------------------ the phases, each returning what it did

    def _plan_and_apply(self, asked: list[str]) -> Reconciled | None:
        """Fetch, load, plan the refs due and, holding the lease, apply; None when the specs did not load."""
        revision = self.source.fetch()
        structlog.contextvars.bind_contextvars(revision=revision)
        self.cycle.source_error(self.source.fetch_error)
        self.cycle.attempting(revision, self.source.describe(revision))
        spec_set, applied_revision = self._load(revision)
        if spec_set is None or applied_revision is None:
            return None
        every = [s.ref for s in spec_set.specs if self._is_resource(s.kind)]
        new_revision = applied_revision != self._revision
        refs = every if ALL in asked or new_revision else \
            [r for r in every if r in asked or r not in self.latest]  # what is due, and what is new
        self._revision, self.specs = applied_revision, spec_set
        self.cycle.windows(windows_status(spec_set.specs, datetime.now(UTC)))
        self.aws.reset_counts()
        plan = self._plan(spec_set, refs)
        done = Reconciled(spec_set, revision, applied_revision, every, refs, plan)
        if self.stop.is_set():
            return done
        done.leader = self._may_apply(plan)
        done.report = (apply_plan(plan, self.aws, should_stop=self._should_stop, known=self.latest) if done.leader
                       else ApplyReport())
        self.latest = {ref: c for ref, c in {**self.latest, **{c.ref: c for c in plan.changes}}.items()
                       if ref in every}
        self.recorder.calls(self.aws)
        done.calls = sum(self.aws.call_counts().values())
        self.cycle.api_calls(done.calls)
        return done

    def _after_apply(self, done: Reconciled) -> None:
        """The write-back branch, for the drift the agent does not correct."""
        if self.writer is not None and done.applied_revision == done.revision and (done.leader
                                                                                    or self.lease_on_demand):
            self.cycle.write_back(self._write_back(done.spec_set, done.revision))

    def _checks(self, done: Reconciled) -> bool | None:
        """The Redis and site checks of what is due, recorded; healthy or not (None: none ran)."""
        if self.stop.is_set():
            return None
        spec_set = done.spec_set
        clusters = spec_set.by_kind("CacheCluster")
        redis = check_clusters([spec for spec in clusters if spec.ref in done.refs], self.aws)
        self.recorder.health(redis, [c.name for c in clusters])
        distributions = spec_set.by_kind("Distribution")
        due = [self._site(spec) for spec in distributions if spec.ref in done.refs and spec.ref in self.latest]
        due = [site for site in due if not self._site_checks.fresh(site)]
        sites = check_sites(due, self.aws, durations=self.recorder.durations, records=self._publish_records) \
            if due else []
        self._site_checks.checked(due, sites)
        if due:
            self.recorder.site(sites, [d.name for d in distributions])
        return _verdict([*redis, *sites])

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
            self.cycle.spec_invalid(revision, exc.problems)
            if self.source.supports_fallback and self.last_good and self.last_good != revision:
                log.warning("specs.fallback", last_good=self.last_good,
                            reason="the new revision is broken; drift correction continues at the last good one")
                # what this reconcile does from here on, it does at the last good revision: say that one
                structlog.contextvars.bind_contextvars(revision=self.last_good, attempted_revision=revision)
                return load_specs(self.source.checkout(self.last_good), self.source.root), self.last_good
            return None, None
        self.last_good = revision
        self.cycle.spec_valid()
        return spec_set, revision

    # ------------------------------------------------------------------ the lease, stopping

    def _may_apply(self, plan: Plan) -> bool:
        """True when this agent may write: no lease configured, or it holds the lease."""
        if self.lease is None:
            return True
        if self.lease_on_demand and self.heartbeat is None and any(c.applicable for c in plan.changes):
            self.heartbeat = hold_lease(self.lease, wait=True)
        return self.cycle.lease(self.lease.describe(), self.lease.name, self.lease.owner)

    def may_consume_events(self) -> bool:
        return self.lease is None or self.lease.held or self.lease_on_demand

    def _should_stop(self) -> bool:
        """Stop applying between two resources on a signal, or when the lease ran out."""
        if self.stop.is_set():
            return True
        if self.lease is not None and not self.lease.held:
            self.cycle.lease_lost()
            return True
        return False

    # ------------------------------------------------------------------ after the apply

    def _write_back(self, spec_set: SpecSet, revision: str) -> dict[str, Any]:
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
        return published.to_json()

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
