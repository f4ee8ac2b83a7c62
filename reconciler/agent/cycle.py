"""One reconcile cycle, as `run` performs it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from ..engine.apply import ApplyReport, apply_plan
from ..engine.plan import Plan, make_plan
from ..errors import SpecError
from ..specs import load_specs

if TYPE_CHECKING:
    from ..aws import Aws

log = structlog.get_logger()


@dataclass
class CycleResult:
    ok: bool
    plan: Plan | None = None
    report: ApplyReport | None = None
    error: str | None = None
    duration_s: float = 0.0


def run_cycle(specs: Path, aws: Aws, workers: int = 16) -> CycleResult:
    """Load the specs, plan, apply what `enforce` allows, and log every step.

    A spec set that does not load stops the cycle before any AWS call; it is never read as
    "desired = nothing".
    """
    started = time.monotonic()
    try:
        spec_set = load_specs(specs)
    except SpecError as exc:
        for problem in exc.problems:
            log.error("specs.invalid", file=problem.file, line=problem.line, field=problem.path,
                      message=problem.message)
        return CycleResult(ok=False, error=f"{len(exc.problems)} problem(s) in the specs")
    plan = make_plan(spec_set, aws, workers=workers)
    for change in plan.changes:
        if change.action == "error":
            log.error("plan.error", kind=change.kind, name=change.name, error=change.error)
        elif change.is_change:
            log.info("plan.drift" if change.action != "create" else "plan.missing",
                     kind=change.kind, name=change.name, action=change.action,
                     policy=change.policy, fields=[f.path for f in change.fields],
                     refused=change.refused)
    report = apply_plan(plan, aws)
    duration = time.monotonic() - started
    log.info("cycle.done", ok=report.ok, duration_ms=round(duration * 1000),
             changes=sum(1 for o in report.outcomes if o.status == "applied"),
             failures=sum(1 for o in report.outcomes if o.status != "applied"),
             api_calls=sum(aws.calls.values()))
    return CycleResult(ok=report.ok, plan=plan, report=report, duration_s=duration)
