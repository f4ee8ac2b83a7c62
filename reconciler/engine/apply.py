"""Apply a Plan: in dependency order, each resource isolated from the others' failures."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from reconciler.aws.client import describe_failure, wants_traceback
from reconciler.aws.expected import Durations, spoken
from reconciler.core.types import NotYet
from reconciler.engine.plan import Change, ObserveFailure, Plan, change_steps, decide, dependency_wait, observe_all

if TYPE_CHECKING:
    from reconciler.aws.client import Aws

log = structlog.get_logger()


@dataclass
class Outcome:
    change: Change
    status: str                 # applied | pending | failed | refused | waiting (for a dependency)
    message: str = ""
    duration_s: float = 0.0
    work: str | None = None     # the work AWS goes on doing for it after the call (typical.DURATIONS): a pending
                                # change's, or an applied one's that AWS still carries out (a deploy)
    started: float | None = None  # when the step that started that work was sent (epoch seconds)


@dataclass
class ApplyReport:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing failed or was refused (waiting for a dependency that is not there yet is not a failure)."""
        return all(o.status in ("applied", "pending", "waiting") for o in self.outcomes)

    def count(self, status: str, actions: tuple[str, ...] | None = None) -> int:
        return sum(1 for o in self.outcomes if o.status == status
                   and (actions is None or o.change.action in actions))


def apply_order(changes: list[Change]) -> list[Change]:
    """Creates and updates by kind order; deletes afterwards, in reverse kind order."""
    deletes = [c for c in changes if c.action == "delete"]
    others = [c for c in changes if c.action != "delete"]
    others.sort(key=lambda c: c.resource.order)
    deletes.sort(key=lambda c: -c.resource.order)
    return others + deletes


def apply_plan(plan: Plan, aws: Aws, on_outcome: Callable[[Outcome], None] | None = None,
               should_stop: Callable[[], bool] = lambda: False,
               skip: Callable[[Change], bool] = lambda _: False, known: dict[str, Change] | None = None) -> ApplyReport:
    """Carry out every applicable change; one failure does not stop the others.

    `skip` leaves a change for later; `should_stop` ends the run between two resources (a signal);
    `known`: the last changes of resources this plan does not cover (what a change here may wait for).
    """
    report = ApplyReport()
    by_ref = {**(known or {}), **{c.ref: c for c in plan.changes}}
    results: dict[str, Outcome] = {}
    for change in apply_order(plan.changes):
        if should_stop():
            break
        if skip(change):
            continue
        waiting = dependency_wait(change, by_ref, results) if change.applicable else None
        outcome = Outcome(change, "waiting", waiting) if waiting else _apply_one(change, aws)
        if outcome is None:
            continue
        if waiting:
            log.info("apply.waiting", kind=change.kind, name=change.name, waiting=waiting)
        results[change.ref] = outcome
        report.outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    return report


def _apply_one(change: Change, aws: Aws) -> Outcome | None:
    if change.action == "error":
        return Outcome(change, "failed", change.error or "")
    if change.refused:
        log.warning("apply.refused", kind=change.kind, name=change.name, reason=change.refused)
        return Outcome(change, "refused", change.refused)
    if not change.applicable:
        return None
    started, sent = time.monotonic(), _Sent()
    try:
        status, message = _run_steps(change, aws, sent)
    except Exception as exc:
        message = describe_failure(exc, change.ref, "applying")
        log.error("apply.failed", kind=change.kind, name=change.name, action=change.action, error=message,
                  exc_info=wants_traceback(exc))
        return Outcome(change, "failed", message, time.monotonic() - started)
    duration = time.monotonic() - started
    fields = [f.to_json() for f in change.effective_fields]  # before -> after; secrets masked
    if status == "pending":
        log.info(f"apply.{change.action}.pending", kind=change.kind, name=change.name, waiting=message, fields=fields)
    else:
        log.info(f"apply.{change.action}", kind=change.kind, name=change.name, duration_ms=round(duration * 1000),
                 fields=fields)
    return Outcome(change, status, message, duration, sent.work, sent.at)


@dataclass
class _Sent:
    """The last step sent that AWS works on afterwards (a table UPDATING): what work, since when."""

    work: str | None = None
    at: float | None = None


MAX_ROUNDS = 12  # look-agains within one apply, for steps that AWS finished at once


def _run_steps(change: Change, aws: Aws, sent: _Sent | None = None) -> tuple[str, str]:
    """Run a change's steps in order until one must wait for AWS, or all are done.

    After a step that leaves AWS busy, the resource is observed again at once: when AWS has
    already finished (fast operations, an instant sandbox) the next steps run now; otherwise
    the change is `pending` and a later cycle continues. Nothing here waits for AWS.
    """
    current, done = change, set()
    for _ in range(MAX_ROUNDS):
        steps = current.steps if current is change else change_steps(current, aws)
        settled = True
        for step in steps:
            if step.wait:
                return "pending", f"waiting for AWS: {step.wait}; next: {step.description}"
            if step.description in done:  # AWS does not show that step's effect yet: never send it twice
                return "pending", f"waiting for AWS to show the effect of: {step.description}"
            log.info("apply.step", kind=change.kind, name=change.name, step=step.description)
            try:
                at = time.time()
                step.run()
                if step.takes and sent is not None:
                    sent.work, sent.at = step.takes, at
            except NotYet as later:  # AWS's own "not now": pending, tried again by a later cycle
                log.info("apply.not_yet", kind=change.kind, name=change.name, step=step.description,
                         reason=later.reason)
                return "pending", f"waiting for AWS: {later.reason}; next: {step.description}"
            finally:
                if aws is not None:  # its tags are read directly for a while: a bulk listing may lag a write
                    aws.wrote(change.ref)
            done.add(step.description)
            if step.settles:
                settled = False
                break
        if settled:
            return "applied", ""
        current = _look_again(current, aws)
        if current.action == "error":
            return "pending", f"a step was applied, but looking again failed: {current.error}"
        if not current.applicable:
            pending = current.live.pending if current.live else None
            return ("pending", f"AWS is still working: {pending}") if pending else ("applied", "")
    return "pending", "more steps remain; the next cycle goes on"


def _look_again(change: Change, aws: Aws) -> Change:
    """The resource's change as it stands now (fresh reads, not the cycle's shared ones)."""
    aws.new_cycle()
    resource = change.resource
    return decide(resource, observe_all([resource], aws, workers=1)[0])


def wait_until_settled(report: ApplyReport, aws: Aws, timeout_s: float,
                       on_progress: Callable[[str], None] = lambda _: None, poll_s: float = 5,
                       durations: Durations | None = None) -> list[str]:
    """Poll the applied resources until AWS reports none of them pending (e.g. a distribution
    deploying), saying how far along each is against how long AWS usually takes. Returns the refs still
    pending at the timeout."""
    durations = durations or Durations(None)
    resources = list({o.change.ref: o.change.resource for o in report.outcomes
                      if o.status in ("applied", "pending")}.values())
    deadline = time.monotonic() + timeout_s
    started = time.monotonic()
    while True:
        aws.new_cycle()
        waiting, busy = [], []
        for resource, live in zip(resources, observe_all(resources, aws), strict=True):
            if isinstance(live, ObserveFailure):  # said in the log; the next plan reports it
                continue
            if live is not None and live.pending:
                waiting.append(f"{resource.ref} ({live.pending})")
                busy.append(resource.ref)
        if not waiting or time.monotonic() > deadline:
            return waiting
        on_progress(progress_text(report, busy, durations, time.monotonic() - started)
                    or f"Waiting for {', '.join(waiting)}... {time.monotonic() - started:.0f}s")
        time.sleep(poll_s)


def progress_text(report: ApplyReport, busy: list[str], durations: Durations, waited_s: float,
                  width: int = 24) -> str | None:
    """`[#######.........] 45%  Table/Products: dynamodb.throughput 27s of ~60s, ~33s left`: the resource
    whose work should finish last, as a bar; None when no pending work is known."""
    latest: dict[str, Outcome] = {}
    for outcome in report.outcomes:  # the last outcome with known work, per resource
        if outcome.change.ref in busy and outcome.work and outcome.started:
            latest[outcome.change.ref] = outcome
    if not latest:
        return None
    now = time.time()
    rows = []
    for ref, outcome in latest.items():
        assert outcome.work is not None and outcome.started is not None
        expected = durations.expected(outcome.work)
        elapsed = now - outcome.started
        rows.append((expected.seconds - elapsed, ref, outcome.work, elapsed, expected))
    left, ref, work, elapsed, expected = max(rows)
    share = min(1.0, elapsed / expected.seconds) if expected.seconds else 1.0
    bar = "#" * round(share * width) + "." * (width - round(share * width))
    remaining = f"~{spoken(left)} left" if left > 0 else (
        "slow: past 1.5 x p90" if elapsed > expected.slow_after() else "longer than usual")
    others = f" (+{len(busy) - 1} more)" if len(busy) > 1 else ""
    return (f"[{bar}] {share:4.0%}  {ref}: {work} {spoken(elapsed)} of ~{spoken(expected.seconds)}, "
            f"{remaining}{others}")
