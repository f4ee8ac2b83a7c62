"""Apply a Plan: in dependency order, each resource isolated from the others' failures."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from ..aws import describe_error
from ..model import Pending
from .plan import Change, Plan

if TYPE_CHECKING:
    from ..aws import Aws

log = structlog.get_logger()


@dataclass
class Outcome:
    change: Change
    status: str                 # applied | pending | failed | refused | blocked
    message: str = ""
    duration_s: float = 0.0


@dataclass
class ApplyReport:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.status in ("applied", "pending") for o in self.outcomes)

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
               skip: Callable[[Change], bool] = lambda _: False) -> ApplyReport:
    """Carry out every applicable change; one failure does not stop the others.

    `skip` leaves a change for later (the agent's per-resource backoff); `should_stop` ends
    the run between two resources (a signal).
    """
    report = ApplyReport()
    failed: set[str] = set()
    for change in apply_order(plan.changes):
        if should_stop():
            break
        if skip(change):
            continue
        outcome = _apply_one(change, aws, failed)
        if outcome is None:
            continue
        if outcome.status in ("failed", "refused"):
            failed.add(change.ref)
        report.outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    return report


def _apply_one(change: Change, aws: Aws, failed: set[str]) -> Outcome | None:
    if change.action == "error":
        return Outcome(change, "failed", change.error or "")
    if change.refused:
        log.warning("apply.refused", kind=change.kind, name=change.name, reason=change.refused)
        return Outcome(change, "refused", change.refused)
    if not change.applicable:
        return None
    blocked = [d for d in change.resource.dependencies() if d in failed]
    if blocked:
        return Outcome(change, "blocked", f"not applied: {', '.join(blocked)} failed")
    started = time.monotonic()
    try:
        _execute(change, aws)
    except Pending as exc:
        log.info(f"apply.{change.action}.pending", kind=change.kind, name=change.name, reason=str(exc))
        return Outcome(change, "pending", str(exc), time.monotonic() - started)
    except Exception as exc:
        message = describe_error(exc)
        log.error("apply.failed", kind=change.kind, name=change.name, action=change.action,
                  error=message)
        return Outcome(change, "failed", message, time.monotonic() - started)
    duration = time.monotonic() - started
    log.info(f"apply.{change.action}", kind=change.kind, name=change.name,
             duration_ms=round(duration * 1000))
    return Outcome(change, "applied", duration_s=duration)


def _execute(change: Change, aws: Aws) -> None:
    resource, live = change.resource, change.live
    if change.action in ("replace", "delete") and resource.data_bearing and live is not None:
        backup = resource.backup(aws, live)  # a failed backup stops the delete: nothing is lost
        if backup:
            log.info("apply.backup", kind=change.kind, name=change.name, backup=backup)
    if change.action == "create":
        resource.create(aws)
    elif change.action in ("update", "adopt"):
        assert live is not None
        resource.update(aws, live, change.effective_fields)
    elif change.action == "replace":
        assert live is not None
        resource.delete(aws, live)
        resource.create(aws)
    elif change.action == "delete":
        assert live is not None
        resource.delete(aws, live)


def wait_until_settled(report: ApplyReport, aws: Aws, timeout_s: float,
                       on_progress: Callable[[str], None] = lambda _: None, poll_s: float = 5) -> list[str]:
    """Poll the applied resources until AWS reports none of them pending (e.g. a distribution
    deploying). Returns the refs still pending at the timeout."""
    resources = [o.change.resource for o in report.outcomes if o.status in ("applied", "pending")]
    deadline = time.monotonic() + timeout_s
    started = time.monotonic()
    while True:
        aws.new_cycle()
        waiting = []
        for resource in resources:
            live = resource.observe(aws)
            if live is not None and live.pending:
                waiting.append(f"{resource.ref} ({live.pending})")
        if not waiting or time.monotonic() > deadline:
            return waiting
        on_progress(f"Waiting for {', '.join(waiting)}... {time.monotonic() - started:.0f}s")
        time.sleep(poll_s)
