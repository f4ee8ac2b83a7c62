"""What a reconcile says about itself, recorded: the revision it attempts and the one it applied, a spec set that
did not load, a source that cannot be reached, the change windows, the lease's role, and at its end the cycle's
metrics, summary and `agent.stuck` when nothing has succeeded for a while. Each resource's own record is
record.py's; between them, they alone write the status store, the metrics and the events."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog

from reconciler.agent.serve.status import StatusStore, now_iso
from reconciler.agent.tell.events import Event
from reconciler.core.vocabulary import ResourceState

if TYPE_CHECKING:
    from reconciler.agent.config import AgentConfig
    from reconciler.core.errors import SpecProblem

log = structlog.get_logger()


class CycleRecorder:
    """The cycle-level part of /status, the metrics and the events."""

    def __init__(self, store: StatusStore, config: AgentConfig):
        self.store, self.config = store, config
        self.last_success: float | None = None
        self._role: str | None = None

    def started(self) -> None:
        self.store.started()

    def attempting(self, revision: str, commit: dict[str, str] | None) -> None:
        self.store.update(lastAttemptedRevision=revision, commit=commit)

    def source_error(self, error: str | None) -> None:
        """A spec source that cannot be reached now: said in the log and /status; the reconcile goes on with
        the revision last fetched."""
        previous = self.store.get("sourceError")
        if error:
            since = previous["since"] if previous and previous["error"] == error else now_iso()
            self.store.update(sourceError={"error": error, "since": since})
            log.warning("git.fetch_failed", error=error, effect="reconciling the revision last fetched")
        else:
            self.store.update(sourceError=None)
            if previous:
                log.info("git.fetch_recovered")

    def spec_invalid(self, revision: str, problems: Sequence[SpecProblem]) -> None:
        shown = [{"file": p.file, "line": p.line, "field": p.path, "message": p.message} for p in problems]
        for p in shown:
            log.error("specs.invalid", **p)
        self.store.metrics.spec_errors.inc()
        self.store.update(specError={"revision": revision, "problems": shown})
        first = problems[0]
        self.store.events.emit(Event("spec.invalid", None, None, f"{first}" + (
            f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""), revision=revision))

    def spec_valid(self) -> None:
        self.store.events.clear("spec.invalid", None, None)
        self.store.update(specError=None)

    @property
    def spec_broken(self) -> bool:
        return self.store.get("specError") is not None

    def windows(self, shown: list[dict[str, Any]]) -> None:
        self.store.update(windows=shown)

    def lease(self, info: dict[str, Any], name: str, owner: str) -> bool:
        """The lease's state; says it when this agent's role changes. True: this agent leads (may apply)."""
        leader = info["role"] == "leader"
        self.store.update(lease=info)
        self.store.metrics.lease_leader.set(int(leader))
        if info["role"] != self._role:
            if leader:
                log.info("lease.leader", lease=name, owner=owner, effect="this agent applies")
            else:
                log.warning("lease.follower", lease=name, holder=info["holder"],
                            effect="observing only; the holder applies")
            self._role = info["role"]
        return leader

    def lease_lost(self) -> None:
        log.error("apply.stopped", reason="the lease was lost or could not be renewed in time")
        self.store.events.emit(Event("lease.lost", None, None, "the lease was lost or could not be renewed in "
                                     "time: applying stopped", revision=self.store.get("lastAttemptedRevision")))

    def write_back(self, published: dict[str, Any]) -> None:
        self.store.update(writeBack=published)

    def api_calls(self, calls: int) -> None:
        self.store.update(apiCalls=calls)

    def applied(self, revision: str) -> None:
        self.store.update(lastAppliedRevision=revision)
        self.store.metrics.revision.info({"revision": revision})

    def retries(self, states: dict[str, ResourceState], requeue: dict[str, float]) -> None:
        """Said beside each error: when it is tried again."""
        for ref, state in states.items():
            if state == ResourceState.ERROR:
                self.store.annotate(ref, retryInSeconds=round(requeue[ref]))

    def finished(self, ok: bool, error: str | None, healthy: bool | None, states: dict[str, ResourceState],
                 refs: list[str], duration: float) -> None:
        """The cycle's metrics, its line in /status and its log event; agent.stuck when nothing has succeeded
        for `stuck_after` intervals (cleared by a success)."""
        self._watch_progress(ok, error)
        metrics = self.store.metrics
        metrics.cycles.labels(result="ok" if ok else "error").inc()
        metrics.cycle_duration.observe(duration)
        metrics.last_cycle.set_to_current_time()
        planned = [r for r in states if r in refs]
        self.store.finished({"finished": now_iso(), "durationSeconds": round(duration, 3),
                             "result": "ok" if ok else "error", "error": error, "healthy": healthy,
                             "resources": len(planned),
                             "changes": sum(1 for r in planned if (self.store.resource(r) or {}).get("changed")),
                             "errors": sum(1 for r in planned if states[r] == ResourceState.ERROR)})
        pending = sorted(r for r, state in states.items() if state == ResourceState.PENDING)
        log.info("cycle.done", ok=ok, healthy=healthy, duration_ms=round(duration * 1000),
                 resources=len(planned), **({"pending": pending} if pending else {}))

    def _watch_progress(self, ok: bool, error: str | None) -> None:
        now = time.monotonic()
        if ok:
            self.last_success = now
            self.store.events.clear("agent.stuck", None, None)
            return
        since = self.last_success or self.store.started_at
        if now - since >= self.config.stuck_after * self.config.interval_s:
            self.store.events.emit(Event("agent.stuck", None, None, f"no cycle has succeeded for {now - since:.0f}s "
                                         f"({self.config.stuck_after} intervals); last error: {error}",
                                         revision=self.store.get("lastAttemptedRevision")))
