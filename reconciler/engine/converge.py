"""Carrying changes through (`apply --wait`): while AWS works, wait and say how far along it is; once it has
settled, plan again and apply the next steps; until nothing is left or the time is up. Applying under the
agents' single-writer lease, when they use one, is here too: a hand-run apply never writes beside a live agent.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from reconciler.aws.client import Aws
from reconciler.aws.endpoints import aws_time_factor
from reconciler.aws.expected_durations import ExpectedDurations, expected_durations, in_words
from reconciler.core.errors import ReconcilerError
from reconciler.core.vocabulary import Action, OutcomeStatus
from reconciler.engine.apply import ApplyReport, Outcome, apply_plan
from reconciler.engine.changes import Change, Plan
from reconciler.engine.decide import ObserveFailure
from reconciler.engine.lease import Heartbeat, Lease
from reconciler.engine.plan import observe_all


@dataclass
class Converging:
    """What `carry_through` needs besides the report: how to plan again, and whom to tell."""

    replan: Callable[[], Plan]
    still_held: Callable[[], bool] = lambda: True
    on_progress: Callable[[str], None] = lambda _: None
    on_report: Callable[[ApplyReport], None] = lambda _: None
    on_settled: Callable[[], None] = lambda: None
    durations: ExpectedDurations = field(default_factory=expected_durations)


def carry_through(report: ApplyReport, aws: Aws, wait_s: float, how: Converging) -> list[str]:
    """Wait until AWS has finished what `report` started, plan again, apply the next steps; until nothing is
    left or `wait_s` has passed. The outcomes of each later apply are added to `report`. Returns what is still
    in progress at the timeout (empty: done, or a later apply failed and `report` says so)."""
    deadline = time.monotonic() + wait_s
    poll = min(10.0, max(0.25, 10 * aws_time_factor()))  # 10 s of AWS's time
    last: list[str] = []
    while True:
        waiting = wait_until_settled(report, aws, max(1.0, deadline - time.monotonic()), how.on_progress,
                                     poll_s=poll, durations=how.durations)
        how.on_settled()
        if waiting or not how.still_held():
            return waiting
        follow_up = how.replan()
        broken = [c for c in follow_up.changes if c.action == Action.ERROR or c.refused]
        if broken:  # what a later plan cannot do is this apply's failure too
            _apply_more(Plan(broken), report, aws, how)
            return []
        todo = [c for c in follow_up.changes if c.applicable]
        if not todo:
            return []
        if time.monotonic() > deadline:
            return [c.ref for c in todo]
        held = [c for c in todo if c.steps and c.steps[0].wait]
        if len(held) == len(todo):  # an AWS rule holds every next step (one TTL change an hour): wait for it
            how.on_progress("Waiting for AWS: " + "; ".join(f"{c.ref}: {c.steps[0].wait}" for c in held))
            time.sleep(poll)
            continue
        again = _still_differs(todo)
        if again == last:  # applied, settled, and the same difference is back: AWS keeps another value
            return [f"{c.ref} (applied, but AWS still reports {', '.join(f.path for f in c.effective_fields)} "
                    "differently; not sent again)" for c in todo]
        last = again
        if not _apply_more(follow_up, report, aws, how).ok:
            return []


def _apply_more(plan: Plan, report: ApplyReport, aws: Aws, how: Converging) -> ApplyReport:
    more = apply_plan(plan, aws, should_stop=lambda: not how.still_held())
    how.on_report(more)
    report.outcomes += more.outcomes
    return more


def _still_differs(todo: list[Change]) -> list[str]:
    """What the next apply would send, to tell it from the last one's."""
    return sorted(f"{c.ref} {[f.path for f in c.effective_fields]} {[st.description for st in c.steps]}"
                  for c in todo)


@contextlib.contextmanager
def holding_lease(lease: Lease | None, on_wait: Callable[[str, float], None]) -> Iterator[Callable[[], bool]]:
    """Hold the agents' lease while applying, when agents use one (its table exists); refuse to write while a
    live agent holds it (`on_wait(holder, seconds)` while one may have stopped). Yields a check that the lease is
    still held."""
    if lease is None or not lease.table_exists():
        yield lambda: True
        return
    if not lease.acquire_or_watch(on_wait=on_wait):
        raise ReconcilerError(
            f"the agent {lease.holder} holds the lease {lease.name!r} (DynamoDB table {lease.table}) and renews "
            "it: it applies the specs it follows, and two writers would undo each other. Commit the change for "
            "it to apply, or stop it first (or pass --no-lease if that agent manages a different stack).")
    heartbeat = Heartbeat(lease).start()
    try:
        yield lambda: lease.held
    finally:
        heartbeat.stop()  # and release


def wait_until_settled(report: ApplyReport, aws: Aws, timeout_s: float,
                       on_progress: Callable[[str], None] = lambda _: None, poll_s: float = 5,
                       durations: ExpectedDurations | None = None) -> list[str]:
    """Poll the applied resources until AWS reports none of them pending (e.g. a distribution
    deploying), saying how far along each is against how long AWS usually takes. Returns the refs still
    pending at the timeout."""
    durations = durations or ExpectedDurations(None)
    resources = list({o.change.ref: o.change.resource for o in report.outcomes
                      if o.status in (OutcomeStatus.APPLIED, OutcomeStatus.PENDING)}.values())
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


def progress_text(report: ApplyReport, busy: list[str], durations: ExpectedDurations, waited_s: float,
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
    remaining = f"~{in_words(left)} left" if left > 0 else (
        "slow: past 1.5 x p90" if elapsed > expected.slow_after() else "longer than usual")
    others = f" (+{len(busy) - 1} more)" if len(busy) > 1 else ""
    return (f"[{bar}] {share:4.0%}  {ref}: {work} {in_words(elapsed)} of ~{in_words(expected.seconds)}, "
            f"{remaining}{others}")
