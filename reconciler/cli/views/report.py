"""What a run did, in a few lines a person reads. `render_report` lists an apply's outcomes change by change;
`summarize` gives one line per resource that changed, waits or failed, the counts (`2 created, 1 updated,
3 in progress with AWS, 0 failed, 4 unchanged`) and what happens next. The same summary is the final
`cycle.summary` event of a JSON log. Written once, for `run --once`, `apply` and `writeback`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click
import structlog

from reconciler.aws.expected_durations import ExpectedDurations, in_words
from reconciler.aws.typical_durations import TYPICAL_DURATIONS
from reconciler.cli.views.plan import styled
from reconciler.core.vocabulary import Action, OutcomeStatus, Result
from reconciler.engine.apply import ApplyReport, Outcome
from reconciler.engine.changes import Change, Plan
from reconciler.engine.writeback import WriteBack
from reconciler.engine.writeback import WrittenField as WrittenField

WIDTH = 200  # no line of the report is longer (a long error is cut here; the log has it whole)


@dataclass
class ReportLine:
    """One resource's line: what it counts as, its ref and what happened, in words."""

    result: Result
    ref: str
    text: str

    def line(self) -> str:
        return _cut(f"{self.result.words.symbol} {self.ref}: {self.text}")

    def to_json(self) -> dict[str, str]:
        return {"ref": self.ref, "result": self.result.value, "message": self.text}


@dataclass
class Summary:
    entries: list[ReportLine] = field(default_factory=list)
    counts: dict[Result, int] = field(default_factory=dict)
    next_step: str = ""

    def count(self, result: Result, line: ReportLine | None) -> None:
        self.counts[result] = self.counts.get(result, 0) + 1
        if line is not None:
            self.entries.append(line)

    def counts_line(self) -> str:
        shown = [*Result.counted(), *(r for r in (Result.DELETED, Result.NOT_APPLIED) if self.counts.get(r))]
        return ", ".join(f"{self.counts.get(r, 0)} {r.words.said}" for r in shown) + "."

    def lines(self) -> list[str]:
        """The report as a terminal shows it (no colour: the caller styles it)."""
        return [*(e.line() for e in self.entries), self.counts_line(), _cut(self.next_step)]

    def to_event(self) -> dict[str, Any]:
        """The `cycle.summary` event's fields."""
        return {**{r.value: self.counts.get(r, 0) for r in Result.counted()},
                **{r.value.replace("-", "_"): n for r, n in self.counts.items() if r not in Result.counted() and n},
                "resources": [e.to_json() for e in self.entries], "next": self.next_step}


def summarize(plan: Plan, report: ApplyReport, durations: ExpectedDurations, *, again: str,
              finished: frozenset[str] = frozenset()) -> Summary:
    """The summary of one plan and what applying it did. `again`: the command that goes on with the work (said
    in the next-step line); `finished`: refs AWS has since finished with (apply --wait)."""
    outcomes: dict[str, list[Outcome]] = {}
    for outcome in report.outcomes:
        outcomes.setdefault(outcome.change.ref, []).append(outcome)
    summary = Summary(counts=dict.fromkeys(Result.counted(), 0))
    for change in plan.changes:
        line = _line(change, outcomes.get(change.ref, []), durations, change.ref in finished)
        summary.count(line.result if line else Result.UNCHANGED, line)
    summary.next_step = _next_step(summary, again, durations, report)
    return summary


def _line(change: Change, outcomes: list[Outcome], durations: ExpectedDurations, finished: bool) -> ReportLine | None:
    """The line of one resource, or None when it is unchanged and AWS has nothing going on."""
    ref = change.ref
    if change.action == Action.ERROR:
        return ReportLine(Result.FAILED, ref, f"could not be planned: {change.error}")
    if not outcomes:
        return _untouched(change, finished)
    first, last = outcomes[0], outcomes[-1]
    action = Action(first.change.action)
    if last.status in (OutcomeStatus.FAILED, OutcomeStatus.REFUSED):
        done = f"{action.words.done}, then " if last is not first and first.status == OutcomeStatus.APPLIED else ""
        word = "refused by a safety rule" if last.status == OutcomeStatus.REFUSED else "failed"
        return ReportLine(Result.FAILED, ref, f"{done}{action} {word}: {last.message}")
    if last.status == OutcomeStatus.WAITING:
        return ReportLine(Result.PENDING, ref, f"not {action.words.done.split()[0]} yet: {last.message}")
    work = next((o.work for o in reversed(outcomes) if o.work), None)
    still = last.status == OutcomeStatus.PENDING or (last.work is not None and last.status == OutcomeStatus.APPLIED)
    if still and not finished:
        doing = f"AWS is {_work_words(work, durations)}" if work else last.message or "AWS is still working on it"
        return ReportLine(Result.PENDING, ref, f"{action.words.doing}; {doing}")
    result = {Action.CREATE: Result.CREATED, Action.REPLACE: Result.CREATED, Action.DELETE: Result.DELETED}.get(
        action, Result.UPDATED)
    fields = [f.path for f in first.change.effective_fields]
    detail = f" ({', '.join(fields[:4])}{', ...' if len(fields) > 4 else ''})" if action == Action.UPDATE and fields \
        else ""
    return ReportLine(result, ref, f"{action.words.done}{detail}")


def _untouched(change: Change, finished: bool) -> ReportLine | None:
    """A resource nothing was sent for: drift left alone (observe, paused, a window, a follower), AWS still busy
    with earlier work, or in sync."""
    if change.is_change:
        why = ("paused" if change.paused else "policy: observe" if change.policy == "observe"
               else f"held by {change.window}" if change.window else change.waiting or change.refused
               or "left to the agent holding the lease")
        fields = ", ".join(f.path for f in change.effective_fields[:4])
        return ReportLine(Result.NOT_APPLIED, change.ref, f"differs from its spec{f' ({fields})' if fields else ''}, "
                                                          f"not changed: {why}")
    if change.live and change.live.pending and not finished:
        return ReportLine(Result.PENDING, change.ref, f"in sync; AWS is still working on it ({change.live.pending})")
    return None


def _work_words(work: str, durations: ExpectedDurations) -> str:
    """`carrying out CreateTable: CREATING -> ACTIVE (usually ~20s)`."""
    expected = durations.expected(work)
    what = TYPICAL_DURATIONS[work].what if work in TYPICAL_DURATIONS else work
    runs = expected.source.removeprefix("observed (").rstrip(")")
    said = "AWS's typical time" if expected.source.startswith("typical") else f"the median of {runs} seen here"
    return f"carrying out {what} (usually {_about(expected.seconds)}, {said})"


def _next_step(summary: Summary, again: str, durations: ExpectedDurations, report: ApplyReport) -> str:
    failed = [e for e in summary.entries if e.result == Result.FAILED]
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return (f"Failed: {first.ref}{more}. Fix the cause its line above gives (the log on stderr has AWS's whole "
                f"answer) and {again} again; the other resources were not held back.")
    pending = [e.ref for e in summary.entries if e.result == Result.PENDING]
    if pending:
        works = [o.work for o in report.outcomes if o.work and o.change.ref in pending]
        longest = max((durations.expected(w).seconds for w in works), default=0.0)
        when = f" (usually done within {_about(longest)})" if longest else ""
        return (f"AWS is still working on {len(pending)} resource(s){when}: {again} again then, to see them "
                "finished and take any next step (a running agent does that by itself).")
    if summary.counts.get(Result.NOT_APPLIED):
        return ("Nothing more will be applied: what differs is observe-only, paused or held. `reconciler writeback` "
                "makes the specs say what AWS has, or set the resource's policy to enforce.")
    return "Nothing left to do: AWS matches the specs."


def _about(seconds: float) -> str:
    said = in_words(seconds)
    return said if said.startswith("<") else f"~{said}"


def _cut(line: str) -> str:
    line = " ".join(line.split())  # an AWS message's own newlines and runs of spaces
    return line if len(line) <= WIDTH else line[:WIDTH - 3] + "..."


def summarize_writeback(plan: Plan, done: WriteBack, only: Callable[[Change], bool], dry_run: bool,
                        specs: str) -> Summary:
    """The summary of a write-back: per resource, the fields its spec now states (or would), or why not."""
    written: dict[str, list[WrittenField]] = {}
    skipped: dict[str, list[WrittenField]] = {}
    for entry in done.entries:
        (written if entry.written else skipped).setdefault(entry.ref, []).append(entry)
    summary = Summary(counts=dict.fromkeys(Result.counted(), 0))
    verb = "would be written to" if dry_run else "written to"
    for change in plan.changes:
        if not only(change):
            continue
        line: ReportLine | None = None
        if change.action == Action.ERROR:
            line = ReportLine(Result.FAILED, change.ref, f"could not be read: {change.error}")
        elif change.ref in written:
            fields = written[change.ref]
            files = sorted({f.file for f in fields if f.file})
            line = ReportLine(Result.UPDATED, change.ref,
                              f"spec {verb} {', '.join(files)}: {', '.join(f.path for f in fields)}")
        elif change.ref in skipped:
            why = "; ".join(f"{f.path}: {f.reason}" for f in skipped[change.ref])
            line = ReportLine(Result.NOT_APPLIED, change.ref, f"not written: {why}")
        summary.count(line.result if line else Result.UNCHANGED, line)
    failed = [e for e in summary.entries if e.result == Result.FAILED]
    summary.next_step = (
        f"Failed: {failed[0].ref}: {failed[0].text}. Nothing of it was written." if failed
        else "No drift to write back: the specs already state what AWS has." if not done.written
        else "Dry run: nothing was written; run it without --dry-run to write the files." if dry_run
        else f"Review the diff and commit it; `reconciler plan {specs}` then shows no change for these fields.")
    return summary


def render_report(report: ApplyReport) -> str:
    """What an apply did, change by change, and its verdict line (Terraform's `Apply complete!`)."""
    out: list[str] = []
    for o in report.outcomes:
        if o.status == OutcomeStatus.APPLIED:
            out.append(styled(f"{o.change.ref}: {o.change.action} complete "
                              f"({o.duration_s:.1f}s)", Action.CREATE))
        elif o.status == OutcomeStatus.PENDING:
            out.append(styled(f"{o.change.ref}: {o.change.action} in progress: {o.message}", Action.UPDATE))
        elif o.status == OutcomeStatus.WAITING:
            out.append(styled(f"{o.change.ref}: {o.message}", Action.UPDATE))
        else:
            out.append(styled(f"{o.change.ref}: {o.status}: {o.message}", Action.ERROR))
    done = lambda *acts: report.count(OutcomeStatus.APPLIED, acts)  # noqa: E731
    failed, refused = report.count(OutcomeStatus.FAILED), report.count(OutcomeStatus.REFUSED)
    pending, waiting = report.count(OutcomeStatus.PENDING), report.count(OutcomeStatus.WAITING)
    verdict = ("Apply complete!" if report.ok else "Apply finished with errors." if failed
               else "Apply finished; some changes were refused.")
    out.append(f"{verdict} Resources: {done(Action.CREATE, Action.REPLACE)} added, {done(Action.ADOPT)} adopted, "
               f"{done(Action.UPDATE)} changed, {done(Action.DELETE, Action.REPLACE)} destroyed"
               + (f", {pending} in progress" if pending else "")
               + (f", {waiting} waiting for another resource" if waiting else "")
               + (f", {refused} refused by a safety rule (see above)" if refused else "")
               + (f", {failed} failed." if failed else "."))
    if pending:
        out.append("AWS is still working on what is in progress; its next steps are taken by the next apply or "
                   "the agent's next cycle (apply --wait carries them through now).")
    return "\n".join(out)


def close(report: bool, summary: Summary) -> None:
    """A command's closing report: in words when a person reads it (`report`: a line per resource, the counts,
    what next); else the final `cycle.summary` event of the log (an info event: `run` logs it; `apply` and
    `writeback` at --log-level info, their text on stdout says the same)."""
    if not report:
        structlog.get_logger().info("cycle.summary", **summary.to_event())
        return
    click.echo()
    for entry in summary.entries:
        click.echo(click.style(entry.line(), fg=entry.result.words.colour))
    click.echo(click.style(summary.counts_line(), bold=True))
    click.echo(summary.lines()[-1])
