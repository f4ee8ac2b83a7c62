"""The agent: one work queue of resource refs, a worker that reconciles what is due, and the reasons that
put refs on the queue (controller-runtime's shape).

Reasons: the first look and a person's "reconcile now" (every resource); each resource's own interval
(metadata.interval, else --interval), AWS still working on it (--pending-interval), a failure's backoff (all
three: `requeue after` of its last reconcile); an AWS change event naming it (--watch-events); a pause or resume
from the page. A ref is queued at most once, at the earliest time asked; one worker takes every ref due in
one batch, so two reconciles never overlap and a scheduled pass still reads in bulk. The status store
(status.py) is what the HTTP side reads; it knows nothing of this loop.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from reconciler.agent.config import AgentConfig
from reconciler.agent.memory import trim
from reconciler.agent.queue import Batch, WorkQueue
from reconciler.agent.reconcile import ALL, BatchResult, Reconciler
from reconciler.agent.serve.status import StatusStore, now_iso
from reconciler.agent.tell.events import Events
from reconciler.agent.watch import WAIT_S, ChangeEvent, EventIndex, Poller, Subscription, regions_for, trail_status
from reconciler.aws.endpoints import is_loopback
from reconciler.aws.failures import describe_failure
from reconciler.core.vocabulary import OutcomeStatus
from reconciler.engine.apply import ApplyReport
from reconciler.engine.changes import Plan
from reconciler.engine.lease import Lease, hold_lease
from reconciler.kinds import registry
from reconciler.kinds.interfaces import EventMatched

if TYPE_CHECKING:
    from reconciler.agent.source import DirectorySource, GitSource
    from reconciler.agent.writeback_branch import BranchWriter
    from reconciler.aws.client import Aws

log = structlog.get_logger()
EVENT_WAIT_S = 120  # how long a poller waits for its events' reconcile before deleting the messages


@dataclass
class CycleResult:
    ok: bool
    healthy: bool | None = None  # None: no health check ran (nothing to check, or the cycle stopped early)
    error: str | None = None
    plan: Plan | None = None          # None: the cycle failed before planning (its error says why)
    report: ApplyReport | None = None


class Agent:
    """The queue, its worker, and the reasons; `store` holds what the HTTP endpoints show."""

    def __init__(self, source: DirectorySource | GitSource, aws: Aws, config: AgentConfig | None = None, *,
                 lease: Lease | None = None, events: Events | None = None, writer: BranchWriter | None = None):
        self.config = config or AgentConfig()
        self.aws, self.lease = aws, lease
        events = events or Events(None)
        paused_file = (events.path.parent / "paused.json") if events.path else None
        self.store = StatusStore(events, self.config.interval_s, actions=self.config.http_token is not None,
                                 lease=lease.describe() if lease else None, paused_file=paused_file)
        self.queue = WorkQueue(min_gap_s=min(self.config.min_gap_s, self.config.interval_s / 2))
        self.store.next_due = self._next_checks
        if self.config.environment is not None:  # which stack this agent keeps, and in which account
            self.store.update(environment=self.config.environment.to_json())
        self.stop = threading.Event()
        self.reconciler = Reconciler(self.config, source, aws, self.store, lease=lease, writer=writer, stop=self.stop)
        self._pollers: list[Poller] = []
        self._index = EventIndex()

    # ------------------------------------------------------------------ reasons

    def reconcile_now(self, ref: str | None = None) -> None:
        """A person's "reconcile now" (the page, SIGHUP): one resource, or every one."""
        self.queue.add([ref or ALL], reason="now")

    def set_paused(self, ref: str, paused: bool) -> None:
        """Pause or resume a resource from the page (kept in the state directory across restarts); only one the
        specs declare."""
        if not self.reconciler.declares(ref):
            log.warning("resource.pause_refused", resource=ref, reason="not a resource of the specs")
            return
        self.store.set_paused(ref, paused)
        log.warning("resource.paused" if paused else "resource.resumed", resource=ref, by="the HTTP action")
        self.queue.add([ref], reason="pause" if paused else "resume")

    def on_events(self, touches: list[ChangeEvent]) -> None:
        """AWS's change events named these resources: reconcile them now (the poller deletes the messages only
        after that), and say how it went."""
        refs = sorted({t.ref for t in touches})
        for touch in touches:
            self.reconciler.heard(touch)
        started = time.monotonic()
        self.queue.add(refs, reason="event").wait(EVENT_WAIT_S)
        done = {ref: self.reconciler.last_result(ref) for ref in refs}
        results = {ref: result for ref, (result, _) in done.items()}
        for ref, result in results.items():
            self.store.metrics.event_reconciles.labels(kind=ref.split("/", 1)[0], result=result).inc()
        now = datetime.now(UTC)
        for touch in touches:
            if results.get(touch.ref) == OutcomeStatus.APPLIED and touch.time is not None:
                self.store.metrics.event_latency.observe(max(0.0, (now - touch.time).total_seconds()))
        calls = max((n for _, n in done.values()), default=0)
        log.info("events.reconciled", resources=refs, results=results, api_calls=calls,
                 duration_ms=round((time.monotonic() - started) * 1000))
        watching = dict(self.store.get("events") or {})
        watching["lastReconcile"] = {"time": now_iso(), "resources": refs, "results": results, "apiCalls": calls,
                                     "changedBy": {t.ref: t.describe() for t in touches}}
        watching["received"] = sum(p.received for p in self._pollers)
        self.store.update(events=watching)

    # ------------------------------------------------------------------ the worker

    def work(self, batch: Batch) -> BatchResult:
        """Reconcile one batch and queue each of its refs again when its reconcile says."""
        if batch.late_s > self.config.interval_s:
            log.warning("cycle.late", late_s=round(batch.late_s, 1),
                        reason="the previous reconcile took longer than the interval")
        structlog.contextvars.bind_contextvars(reasons=batch.why())
        try:
            result = self.reconciler.reconcile(batch.refs)
        finally:
            structlog.contextvars.unbind_contextvars("reasons")
        gone = set(self.queue.next_due()) - set(result.refs) - {ALL}
        if gone:
            self.queue.forget(gone)
        by_delay: dict[float, list[str]] = {}
        for ref, delay in result.requeue.items():
            by_delay.setdefault(round(delay, 3), []).append(ref)
        for delay, refs in by_delay.items():
            self.queue.add(refs, after_s=delay, reason="requeue")
        new = [r for r in result.refs if r not in result.requeue and r not in self.queue.next_due()]
        if new:  # a resource the specs declare that nothing queued yet (the first load failed, say)
            self.queue.add(new, after_s=self.config.interval_s, reason="schedule")
        if ALL in batch.refs and not result.requeue:  # nothing could be planned: try everything again later
            self.queue.add([ALL], after_s=self.config.interval_s, reason="schedule")
        self._index = EventIndex.from_plan(Plan(self.reconciler.known_changes()))
        self.queue.done(batch)
        trim()
        return result

    def _next_checks(self) -> dict[str, float]:
        return {ref: s for ref, s in self.queue.next_due().items() if ref != ALL}

    def run_once(self) -> CycleResult:
        """One reconcile of every resource; when it has changes to apply and a lease is configured, they are
        applied only while holding the lease (waiting up to one lease duration for a silent holder)."""
        result = self.reconciler.reconcile_once()
        return CycleResult(result.ok, result.healthy, result.error, result.plan, result.report)

    def run_forever(self, http_host: str, http_port: int | None) -> int:
        """Reconcile what is due until SIGTERM/SIGINT; SIGHUP reconciles everything now."""
        from reconciler.agent.serve.access import Access, parse_networks
        from reconciler.agent.serve.http import serve, tls_context

        server = None
        if http_port is not None:  # before anything else: a port that cannot be served is said at once
            exposure = self._exposure(http_host)
            tls = tls_context(*self.config.http_tls) if self.config.http_tls else None
            server = serve(self.store, self, http_host, http_port,
                           Access(self.config.http_token, self.config.http_read_token, exposure, tls=tls is not None,
                                  trusted_proxies=parse_networks(self.config.http_trusted_proxies)), tls=tls)
        heartbeat = hold_lease(self.lease, wait=False, on_acquired=self.reconcile_now) if self.lease else None

        def on_stop(signum: int, _: Any) -> None:
            log.info("agent.stopping", signal=signal.Signals(signum).name)
            self.stop.set()
            self.queue.close()

        def on_hup(signum: int, _: Any) -> None:
            log.info("agent.sighup", action="reconcile everything now")
            self.reconcile_now()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
        worker = threading.Thread(target=self._work_forever, name="reconcile", daemon=True)
        self.queue.add([ALL], reason="start")
        worker.start()
        if self.config.watch_events:
            self.start_watching()
        log.info("agent.started", interval_s=self.config.interval_s, http_port=http_port)
        while worker.is_alive():
            worker.join(1)
        self.store.running = False
        for poller in self._pollers:
            poller.join(timeout=WAIT_S + 5)
        self.store.events.close()
        if heartbeat is not None:
            heartbeat.stop()  # and release the lease, so a follower takes over at once
        if server:
            server.shutdown()
        log.info("agent.stopped")
        return 0

    def _exposure(self, host: str) -> str | None:
        """A warning, logged and shown on the page, when the port is reachable from other machines and anyone
        there may read it (no read token)."""
        if self.config.http_read_token is not None or is_loopback(host):
            return None
        text = (f"The HTTP port on {host} is readable by anyone who can reach it: the page, /status and /events "
                "show drifted values (table items, tags, the cache's settings), who changed them and commit authors. "
                "Start the agent with --http-read-token-env VAR, or bind 127.0.0.1 (--http-host) and reach it "
                "through an SSH tunnel or the platform's access control (docs/agent.md, \"Who may read the port\").")
        log.warning("http.exposed", host=host, exposes="/, /status, /events", fix="--http-read-token-env VAR",
                    message=text)
        return text

    def _work_forever(self) -> None:
        while not self.stop.is_set():
            batch = self.queue.take()
            if batch is None:
                return
            try:
                self.work(batch)
            except Exception as exc:  # the worker never dies; a bug is said loudly, as ours
                log.exception("cycle.crashed", error=describe_failure(exc, "the work queue", "running"))
                self.queue.done(batch)
                self.queue.add(batch.refs, after_s=self.config.interval_s, reason="retry")

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
                    self.store.update(events={"state": "error", "error": message})
                    self.stop.wait(delay)
                    delay = min(delay * 2, max(self.config.interval_s, 60))

        threading.Thread(target=subscribe, name="events-subscribe", daemon=True).start()

    def _subscribe(self) -> None:
        name = f"{self.lease.name if self.lease else 'reconciler'}-events"
        sources = sorted({source for cls in registry.classes() if issubclass(cls, EventMatched)
                          for source in cls.event_keys})
        queues = [Subscription(self.aws, name, region).ensure(found)
                  for region, found in regions_for(sources, self.aws.region or "us-east-1").items()]
        trail = trail_status(self.aws)
        if trail["state"] != "logging":
            log.warning("events.no_trail", message=trail["message"])
        self._pollers = [Poller(self.aws, q, lambda: self._index, self.on_events, self.reconciler.may_consume_events,
                                self.store.metrics, self.stop) for q in queues]
        for poller in self._pollers:
            poller.start()
        self.store.update(events={"state": "watching", "queues": [q.url for q in queues],
                                  "rules": [q.rule_arn for q in queues], "trail": trail})
        log.info("events.watching", queues=[q.url for q in queues], trail=trail["state"])
