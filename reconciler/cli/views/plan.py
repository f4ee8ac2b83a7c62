"""A plan's views: Terraform-like text for people, versioned JSON for tools, Markdown for a pull request."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from reconciler.aws.expected_durations import ExpectedDurations, expected_durations, in_words
from reconciler.core.plainjson import dumps, json_default
from reconciler.core.types import FieldChange
from reconciler.core.vocabulary import Action
from reconciler.engine.changes import Change, Plan
from reconciler.spec.environments import Environment


def plan_json(plan: Plan, durations: ExpectedDurations | None = None) -> str:
    return json.dumps(plan.to_json(durations or expected_durations()), indent=2, default=json_default)


def format_value(value: Any, sensitive: bool = False) -> str:
    if sensitive:
        return "(sensitive value)"
    return json.dumps(value, default=json_default, ensure_ascii=False)


def styled(text: str, action: Action) -> str:
    """Text in the colour of an action (none for a no-op)."""
    colour = action.words.colour
    return click.style(text, fg=colour) if colour else text


_FIELD_MARKS = {"+": Action.CREATE, "-": Action.DELETE, "~": Action.UPDATE}


def _verb(change: Change) -> str:
    """`will be created`, or `is missing` when the change is not applied (observe-only, paused)."""
    action = change.action
    observing = (change.policy == "observe" or change.paused) and action.is_change
    return action.words.observed if observing else action.words.will


def _field_line(action: Action, f: FieldChange) -> str:
    before = format_value(f.before, f.sensitive)
    after = format_value(f.after, f.sensitive)
    if action == Action.CREATE or f.before is None:
        line, sym = f"{f.path} = {after}", "+"
    elif f.after is None:
        line, sym = f"{f.path} = {before}", "-"
    else:
        line, sym = f"{f.path} = {before} -> {after}", "~"
    if f.ignored:
        return f"      # {line}  (ignored: metadata.ignore)"
    replaces = f.forces_replacement and action in (Action.REPLACE, Action.ADOPT)
    mark = click.style("  # forces replacement", fg="magenta") if replaces else ""
    return f"      {styled(sym, _FIELD_MARKS[sym])} {line}{mark}"


def render_change(change: Change, durations: ExpectedDurations | None = None) -> list[str]:
    action = change.action
    observing = (change.policy == "observe" or change.paused) and action.is_change
    verb = _verb(change)
    if action == Action.NOOP and change.live and change.live.pending:
        verb = "has nothing to change; AWS is still working on it"
    header = f"  # {change.ref} {verb}"
    if observing:
        header += " (paused: not changed)" if change.paused else " (policy: observe, not changed)"
    lines = [click.style(header, bold=True)]
    if change.error:
        lines.append(styled(f"  ! {change.error}", Action.ERROR))
        return lines
    lines.append(styled(f"{action.words.symbol:>3} {change.kind} {change.name!r} {{", action))
    lines += [_field_line(action, f) for f in change.fields]
    lines.append("    }")
    lines += _pending_lines(change, durations or ExpectedDurations(None))
    lines += [f"    note: {n}" for n in change.notes]
    if change.refused:
        lines.append(styled(f"    refused: {change.refused}", Action.ERROR))
    if change.window:
        lines.append(styled(f"    blocked by {change.window} (applied once the window allows)", Action.UPDATE))
    if change.waiting:
        lines.append(styled(f"    {change.waiting} (nothing is sent for it until then)", Action.UPDATE))
    return lines


def _pending_lines(change: Change, durations: ExpectedDurations) -> list[str]:
    """What AWS is doing, and the steps of a change AWS takes one at a time (which wait, for what; how long
    AWS usually takes for each)."""
    lines = []
    live = change.live
    if live and live.pending:
        since = f" since {live.pending_since}" if live.pending_since else ""
        lines.append(styled(f"    pending: {live.pending}{since}", Action.UPDATE))
    if len(change.steps) > 1 or any(s.wait for s in change.steps):
        lines.append("    steps (in the order AWS takes them; a step that waits is taken up by a later cycle):")
        for i, step in enumerate(change.steps, 1):
            wait = styled(f"  [waits: {step.wait}]", Action.UPDATE) if step.wait else ""
            lines.append(f"      {i}. {step.description}{_takes(step.takes, durations)}{wait}")
    elif len(change.steps) == 1 and change.steps[0].takes:
        lines.append(f"    AWS then works on it{_takes(change.steps[0].takes, durations)}")
    return lines


def _takes(work: str | None, durations: ExpectedDurations) -> str:
    if not work:
        return ""
    e = durations.expected(work)
    return click.style(f"  (AWS takes ~{in_words(e.seconds)}, {e.source})", dim=True)


def render_plan(plan: Plan, durations: ExpectedDurations | None = None) -> str:
    durations = durations or expected_durations()
    shown = [c for c in plan.changes if c.is_change or c.action == Action.ERROR
             or any(f.ignored for f in c.fields) or (c.live and c.live.pending)]
    out: list[str] = []
    if any(c.is_change for c in shown):
        out += ["reconciler will perform the following actions:", ""]
    for change in shown:
        out += [*render_change(change, durations), ""]
    if plan.unmanaged:
        out.append(click.style("Unmanaged: these carry reconciler's ownership tags, but no spec declares them "
                               "(a spec file was removed?). They are left alone; to delete one, restore its spec "
                               "with state: absent and deletion: delete.", bold=True))
        out += [f"  ? {o.kind}/{o.name}  ({o.id})" for o in plan.unmanaged] + [""]
    if plan.inventory_error:
        out += [f"(could not list what reconciler owns: {plan.inventory_error})", ""]
    out.append(summary_line(plan))
    expected = plan.expected_seconds(durations) if plan.has_changes else 0
    if expected:
        out.append(f"AWS should finish this in about {in_words(expected)} (the longest chain of steps, by AWS's "
                   "typical durations or what this agent has observed).")
    return "\n".join(out)


def summary_line(plan: Plan) -> str:
    s = plan.summary()
    errors = f" {s['error']} resource(s) could not be planned." if s["error"] else ""
    if not plan.has_changes:
        return (("No changes." if not errors else "No changes planned.") + errors
                + ("" if errors else " The stack matches the specs."))
    refused = sum(1 for c in plan.changes if c.refused)
    observed = sum(1 for c in plan.changes if c.is_change and c.policy == "observe" and not c.paused)
    paused = sum(1 for c in plan.changes if c.is_change and c.paused)
    windowed = sum(1 for c in plan.changes if c.window)
    extra = (f" {refused} refused." if refused else "") + (
        f" {observed} observe-only (not applied)." if observed else "") + (
        f" {paused} paused (not applied)." if paused else "") + (
        f" {windowed} held by a change window." if windowed else "")
    return (f"Plan: {s['create']} to add, {s['adopt']} to adopt, {s['update']} to change, "
            f"{s['replace']} to replace, {s['delete']} to destroy.{extra}{errors}")


# ---------------------------------------------------------------------------- markdown (a pull request comment)

def render_markdown(plan: Plan, title: str, durations: ExpectedDurations | None = None) -> str:
    """The plan as a pull request comment: a summary line, then one collapsible section per resource that
    changes (or cannot be planned), with its fields as a diff, its steps and AWS's expected time. Secrets are
    masked as in every rendering; nothing here is coloured."""
    durations = durations or expected_durations()
    shown = [c for c in plan.changes if c.is_change or c.action == Action.ERROR]
    out = [f"### {title}", "", f"**{summary_line(plan)}**"]
    expected = plan.expected_seconds(durations) if plan.has_changes else 0
    if expected:
        out.append(f"AWS should finish this in about {in_words(expected)}.")
    out.append("")
    for change in shown:
        out += _markdown_change(change, durations)
    if plan.unmanaged:
        out += ["<details><summary>❔ Unmanaged: tagged as reconciler's, declared by no spec (left alone)</summary>",
                "", *[f"- `{o.kind}/{o.name}` ({o.id})" for o in plan.unmanaged], "", "</details>", ""]
    return "\n".join(out).rstrip() + "\n"


def _markdown_change(change: Change, durations: ExpectedDurations) -> list[str]:
    action = change.action
    summary = f"{action.words.icon} <code>{_html(change.ref)}</code> {_verb(change)}"
    if change.refused:
        summary += " — <b>refused</b>"
    lines = [f"<details><summary>{summary}</summary>", ""]
    if change.error:
        return [*lines, f"> {_html(change.error)}", "", "</details>", ""]
    if change.fields:
        diff = [_markdown_field(action, f) for f in change.fields]
        fence = "`" * max(3, 1 + max((len(run) for line in diff for run in re.findall("`+", line)), default=0))
        lines += [f"{fence}diff", *diff, fence, ""]  # a fence longer than any run of backticks in a value
    steps = [(i, s) for i, s in enumerate(change.steps, 1)]
    if len(steps) > 1 or any(s.wait for _, s in steps) or any(s.takes for _, s in steps):
        lines.append("| # | Step | AWS usually takes | Waits for |")
        lines.append("|---|------|-------------------|-----------|")
        for i, step in steps:
            takes = ""
            if step.takes:
                e = durations.expected(step.takes)
                takes = f"~{in_words(e.seconds)}, {_html(e.source)}"
            lines.append(f"| {i} | {_cell(step.description)} | {_cell(takes)} | {_cell(step.wait or '')} |")
        lines.append("")
    for text in [*(f"note: {n}" for n in change.notes),
                 *([f"refused: {change.refused}"] if change.refused else []),
                 *([f"blocked by {change.window}"] if change.window else []),
                 *([change.waiting] if change.waiting else [])]:
        lines.append(f"- {_html(text)}")
    return [*lines, "", "</details>", ""]


def _markdown_field(action: Action, f: FieldChange) -> str:
    before, after = format_value(f.before, f.sensitive), format_value(f.after, f.sensitive)
    if f.ignored:
        return f"# {f.path} = {before} -> {after}  (ignored: metadata.ignore)"
    if action == Action.CREATE or f.before is None:
        return f"+ {f.path} = {after}"
    if f.after is None:
        return f"- {f.path} = {before}"
    return f"- {f.path} = {before}\n+ {f.path} = {after}" + ("  # forces replacement" if f.forces_replacement
                                                               else "")


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: str) -> str:
    return _html(text).replace("|", "\\|").replace("\n", " ")


# ---------------------------------------------------------------------------- one view per format of `plan`


class TextPlan:
    """`plan --format text`: for a terminal; a heading per target when there are several."""

    shows_failures = False  # one target that fails is an error, not a plan (several: each failure is shown)

    def plan(self, plan: Plan, target: Path, environment: Environment | None, several: bool) -> str:
        rendered = render_plan(plan)
        if not (several or environment is not None):
            return rendered
        where = (f" (environment {environment.name}, account {environment.aws.account_id})"
                 if environment is not None and environment.aws.account_id else "")
        return click.style(f"== {target}{where} ==", bold=True) + "\n" + rendered

    def failed(self, target: Path, message: str) -> str:
        return click.style(f"== {target} ==", bold=True) + "\n" + click.style("Error: ", fg="red", bold=True) + message

    def nothing(self, said: str) -> str:
        return said

    def join(self, documents: list[str]) -> str:
        return "\n".join(documents)


class JsonPlan(TextPlan):
    """`plan --format json`: reconciler.plan/v1, with the environment; a list of them for several targets."""

    def plan(self, plan: Plan, target: Path, environment: Environment | None, several: bool) -> str:
        document = plan.to_json(expected_durations())
        if environment is not None:
            document["environment"] = environment.to_json()
        return dumps(document, indent=2)

    def failed(self, target: Path, message: str) -> str:
        return dumps({"target": str(target), "error": message}, indent=2)

    def nothing(self, said: str) -> str:
        return "[]"

    def join(self, documents: list[str]) -> str:
        return documents[0] if len(documents) == 1 else "[\n" + ",\n".join(documents) + "\n]"


class MarkdownPlan(TextPlan):
    """`plan --format markdown`: a pull request comment per target (a failure too: the comment says it)."""

    shows_failures = True

    def plan(self, plan: Plan, target: Path, environment: Environment | None, several: bool) -> str:
        title = (f"reconciler plan: environment `{environment.name}` ({environment.file})" if environment is not None
                 else f"reconciler plan: `{target}`")
        return render_markdown(plan, title)

    def failed(self, target: Path, message: str) -> str:
        return f"### reconciler plan: `{target}`\n\n**Could not be planned.**\n\n```\n{message}\n```\n"

    def nothing(self, said: str) -> str:
        return f"### reconciler plan\n\n{said}\n"


PLAN_VIEWS: dict[str, TextPlan] = {"text": TextPlan(), "json": JsonPlan(), "markdown": MarkdownPlan()}
