"""What a run did, in a few lines a person reads: one line per resource that changed, waits or failed, the counts
(`2 created, 1 updated, 3 in progress with AWS, 0 failed, 4 unchanged`) and what happens next. The same summary
is the final `cycle.summary` event of a JSON log. Written once, for `run --once`, `apply` and `writeback`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.aws.expected import Durations, spoken
from reconciler.aws.typical import DURATIONS
from reconciler.engine.apply import ApplyReport, Outcome
from reconciler.engine.plan import Change, Plan
from reconciler.engine.writeback import Entry as WrittenField
from reconciler.engine.writeback import WriteBack

WIDTH = 200  # no line of the report is longer (a long error is cut here; the log has it whole)
DONE = {"create": "created", "adopt": "adopted (now managed)", "update": "updated", "replace": "replaced",
        "delete": "deleted"}
DOING = {"create": "created", "adopt": "adopted", "update": "updated", "replace": "replaced", "delete": "deleting"}
SYMBOLS = {"created": "+", "updated": "~", "deleted": "-", "pending": "*", "failed": "!", "not-applied": "?"}
COUNTED = ("created", "updated", "pending", "failed", "unchanged")  # always in the counts line, in this order
SAID = {"created": "created", "updated": "updated", "pending": "in progress with AWS", "failed": "failed",
        "unchanged": "unchanged", "deleted": "deleted", "not-applied": "not applied (observe, paused or held)"}


@dataclass
class Entry:
    """One resource's line: its bucket (a key of SAID), its ref and what happened, in words."""

    bucket: str
    ref: str
    text: str

    def line(self) -> str:
        return _cut(f"{SYMBOLS[self.bucket]} {self.ref}: {self.text}")

    def to_json(self) -> dict[str, str]:
        return {"ref": self.ref, "result": self.bucket, "message": self.text}


@dataclass
class Summary:
    entries: list[Entry] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    next_step: str = ""

    def counts_line(self) -> str:
        shown = [*COUNTED, *(k for k in ("deleted", "not-applied") if self.counts.get(k))]
        return ", ".join(f"{self.counts.get(k, 0)} {SAID[k]}" for k in shown) + "."

    def lines(self) -> list[str]:
        """The report as a terminal shows it (no colour: the caller styles it)."""
        return [*(e.line() for e in self.entries), self.counts_line(), _cut(self.next_step)]

    def to_event(self) -> dict[str, Any]:
        """The `cycle.summary` event's fields."""
        return {**{k: self.counts.get(k, 0) for k in COUNTED},
                **{k.replace("-", "_"): n for k, n in self.counts.items() if k not in COUNTED and n},
                "resources": [e.to_json() for e in self.entries], "next": self.next_step}


def summarize(plan: Plan, report: ApplyReport, durations: Durations, *, again: str,
              finished: frozenset[str] = frozenset()) -> Summary:
    """The summary of one plan and what applying it did. `again`: the command that goes on with the work (said
    in the next-step line); `finished`: refs AWS has since finished with (apply --wait)."""
    outcomes: dict[str, list[Outcome]] = {}
    for outcome in report.outcomes:
        outcomes.setdefault(outcome.change.ref, []).append(outcome)
    summary = Summary(counts=dict.fromkeys(COUNTED, 0))
    for change in plan.changes:
        entry = _entry(change, outcomes.get(change.ref, []), durations, change.ref in finished)
        bucket = entry.bucket if entry else "unchanged"
        summary.counts[bucket] = summary.counts.get(bucket, 0) + 1
        if entry:
            summary.entries.append(entry)
    summary.next_step = _next_step(summary, again, durations, report)
    return summary


def _entry(change: Change, outcomes: list[Outcome], durations: Durations, finished: bool) -> Entry | None:
    """The line of one resource, or None when it is unchanged and AWS has nothing going on."""
    ref = change.ref
    if change.action == "error":
        return Entry("failed", ref, f"could not be planned: {change.error}")
    if not outcomes:
        return _untouched(change, finished)
    first, last = outcomes[0], outcomes[-1]
    action = first.change.action
    if last.status in ("failed", "refused"):
        done = f"{DONE[action]}, then " if last is not first and first.status == "applied" else ""
        word = "refused by a safety rule" if last.status == "refused" else "failed"
        return Entry("failed", ref, f"{done}{action} {word}: {last.message}")
    if last.status == "waiting":
        return Entry("pending", ref, f"not {DONE[action].split()[0]} yet: {last.message}")
    work = next((o.work for o in reversed(outcomes) if o.work), None)
    still = last.status == "pending" or (last.work is not None and last.status == "applied")
    if still and not finished:
        doing = f"AWS is {_work_words(work, durations)}" if work else last.message or "AWS is still working on it"
        return Entry("pending", ref, f"{DOING[action]}; {doing}")
    bucket = {"create": "created", "replace": "created", "delete": "deleted"}.get(action, "updated")
    fields = [f.path for f in first.change.effective_fields]
    detail = f" ({', '.join(fields[:4])}{', ...' if len(fields) > 4 else ''})" if action == "update" and fields else ""
    return Entry(bucket, ref, f"{DONE[action]}{detail}")


def _untouched(change: Change, finished: bool) -> Entry | None:
    """A resource nothing was sent for: drift left alone (observe, paused, a window, a follower), AWS still busy
    with earlier work, or in sync."""
    if change.is_change:
        why = ("paused" if change.paused else "policy: observe" if change.policy == "observe"
               else f"held by {change.window}" if change.window else change.waiting or change.refused
               or "left to the agent holding the lease")
        fields = ", ".join(f.path for f in change.effective_fields[:4])
        return Entry("not-applied", ref=change.ref, text=f"differs from its spec{f' ({fields})' if fields else ''}, "
                                                         f"not changed: {why}")
    if change.live and change.live.pending and not finished:
        return Entry("pending", change.ref, f"in sync; AWS is still working on it ({change.live.pending})")
    return None


def _work_words(work: str, durations: Durations) -> str:
    """`carrying out CreateTable: CREATING -> ACTIVE (usually ~20s)`."""
    expected = durations.expected(work)
    what = DURATIONS[work].what if work in DURATIONS else work
    runs = expected.source.removeprefix("observed (").rstrip(")")
    said = "AWS's typical time" if expected.source.startswith("typical") else f"the median of {runs} seen here"
    return f"carrying out {what} (usually {_about(expected.seconds)}, {said})"


def _next_step(summary: Summary, again: str, durations: Durations, report: ApplyReport) -> str:
    failed = [e for e in summary.entries if e.bucket == "failed"]
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return (f"Failed: {first.ref}{more}. Fix the cause its line above gives (the log on stderr has AWS's whole "
                f"answer) and {again} again; the other resources were not held back.")
    pending = [e.ref for e in summary.entries if e.bucket == "pending"]
    if pending:
        works = [o.work for o in report.outcomes if o.work and o.change.ref in pending]
        longest = max((durations.expected(w).seconds for w in works), default=0.0)
        when = f" (usually done within {_about(longest)})" if longest else ""
        return (f"AWS is still working on {len(pending)} resource(s){when}: {again} again then, to see them "
                "finished and take any next step (a running agent does that by itself).")
    if summary.counts.get("not-applied"):
        return ("Nothing more will be applied: what differs is observe-only, paused or held. `reconciler writeback` "
                "makes the specs say what AWS has, or set the resource's policy to enforce.")
    return "Nothing left to do: AWS matches the specs."


def _about(seconds: float) -> str:
    said = spoken(seconds)
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
    summary = Summary(counts=dict.fromkeys(COUNTED, 0))
    verb = "would be written to" if dry_run else "written to"
    for change in plan.changes:
        if not only(change):
            continue
        if change.action == "error":
            entry: Entry | None = Entry("failed", change.ref, f"could not be read: {change.error}")
        elif change.ref in written:
            fields = written[change.ref]
            files = sorted({f.file for f in fields if f.file})
            entry = Entry("updated", change.ref, f"spec {verb} {', '.join(files)}: {', '.join(f.path for f in fields)}")
        elif change.ref in skipped:
            why = "; ".join(f"{f.path}: {f.reason}" for f in skipped[change.ref])
            entry = Entry("not-applied", change.ref, f"not written: {why}")
        else:
            entry = None
        bucket = entry.bucket if entry else "unchanged"
        summary.counts[bucket] = summary.counts.get(bucket, 0) + 1
        if entry:
            summary.entries.append(entry)
    failed = [e for e in summary.entries if e.bucket == "failed"]
    summary.next_step = (
        f"Failed: {failed[0].ref}: {failed[0].text}. Nothing of it was written." if failed
        else "No drift to write back: the specs already state what AWS has." if not done.written
        else "Dry run: nothing was written; run it without --dry-run to write the files." if dry_run
        else f"Review the diff and commit it; `reconciler plan {specs}` then shows no change for these fields.")
    return summary
