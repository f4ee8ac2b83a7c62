"""Apply a Plan: in dependency order, each resource isolated from the others' failures."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from reconciler.aws.failures import describe_failure, wants_traceback
from reconciler.core.types import NotYet
from reconciler.core.vocabulary import Action, OutcomeStatus
from reconciler.engine.changes import Change, Plan
from reconciler.engine.decide import change_steps, decide, dependency_wait
from reconciler.engine.plan import observe_all

if TYPE_CHECKING:
    from reconciler.aws.client import Aws

log = structlog.get_logger()


@dataclass
class Outcome:
    change: Change
    status: OutcomeStatus
    message: str = ""
    duration_s: float = 0.0
    work: str | None = None     # the work AWS goes on doing for it after the call (TYPICAL_DURATIONS): a pending
                                # change's, or an applied one's that AWS still carries out (a deploy)
    started: float | None = None  # when the step that started that work was sent (epoch seconds)

    def __post_init__(self) -> None:
        self.status = OutcomeStatus(self.status)


@dataclass
class ApplyReport:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing failed or was refused (waiting for a dependency that is not there yet is not a failure)."""
        return all(o.status.ok for o in self.outcomes)

    def count(self, status: str, actions: tuple[str, ...] | None = None) -> int:
        return sum(1 for o in self.outcomes if o.status == status
                   and (actions is None or o.change.action in actions))


def apply_order(changes: list[Change]) -> list[Change]:
    """Creates and updates by kind order; deletes afterwards, in reverse kind order."""
    deletes = [c for c in changes if c.action == Action.DELETE]
    others = [c for c in changes if c.action != Action.DELETE]
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
        outcome = Outcome(change, OutcomeStatus.WAITING, waiting) if waiting else _apply_one(change, aws)
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
    if change.action == Action.ERROR:
        return Outcome(change, OutcomeStatus.FAILED, change.error or "")
    if change.refused:
        log.warning("apply.refused", kind=change.kind, name=change.name, reason=change.refused)
        return Outcome(change, OutcomeStatus.REFUSED, change.refused)
    if not change.applicable:
        return None
    started, sent = time.monotonic(), _Sent()
    try:
        status, message = _run_steps(change, aws, sent)
    except Exception as exc:
        message = describe_failure(exc, change.ref, "applying")
        log.error("apply.failed", kind=change.kind, name=change.name, action=change.action, error=message,
                  exc_info=wants_traceback(exc))
        return Outcome(change, OutcomeStatus.FAILED, message, time.monotonic() - started)
    duration = time.monotonic() - started
    fields = [f.to_json() for f in change.effective_fields]  # before -> after; secrets masked
    if status == OutcomeStatus.PENDING:
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


def _run_steps(change: Change, aws: Aws, sent: _Sent | None = None) -> tuple[OutcomeStatus, str]:
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
                return OutcomeStatus.PENDING, f"waiting for AWS: {step.wait}; next: {step.description}"
            if step.description in done:  # AWS does not show that step's effect yet: never send it twice
                return OutcomeStatus.PENDING, f"waiting for AWS to show the effect of: {step.description}"
            log.info("apply.step", kind=change.kind, name=change.name, step=step.description)
            try:
                at = time.time()
                step.run()
                if step.takes and sent is not None:
                    sent.work, sent.at = step.takes, at
            except NotYet as later:  # AWS's own "not now": pending, tried again by a later cycle
                log.info("apply.not_yet", kind=change.kind, name=change.name, step=step.description,
                         reason=later.reason)
                return OutcomeStatus.PENDING, f"waiting for AWS: {later.reason}; next: {step.description}"
            finally:
                if aws is not None:  # its tags are read directly for a while: a bulk listing may lag a write
                    aws.wrote(change.ref)
            done.add(step.description)
            if step.settles:
                settled = False
                break
        if settled:
            return OutcomeStatus.APPLIED, ""
        current = _look_again(current, aws)
        if current.action == Action.ERROR:
            return OutcomeStatus.PENDING, f"a step was applied, but looking again failed: {current.error}"
        if not current.applicable:
            pending = current.live.pending if current.live else None
            if pending:
                return OutcomeStatus.PENDING, f"AWS is still working: {pending}"
            return OutcomeStatus.APPLIED, ""
    return OutcomeStatus.PENDING, "more steps remain; the next cycle goes on"


def _look_again(change: Change, aws: Aws) -> Change:
    """The resource's change as it stands now (fresh reads, not the cycle's shared ones)."""
    aws.new_cycle()
    resource = change.resource
    return decide(resource, observe_all([resource], aws, workers=1)[0])
