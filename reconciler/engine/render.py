"""Render plans and apply reports: Terraform-like text for people, versioned JSON for tools."""

from __future__ import annotations

import json
import re
from typing import Any

import click

from reconciler.aws.expected import Durations, agent_durations, spoken
from reconciler.core.plainjson import json_default
from reconciler.core.types import FieldChange
from reconciler.engine.apply import ApplyReport
from reconciler.engine.plan import Change, Plan

SYMBOLS = {"create": "+", "adopt": ">", "update": "~", "replace": "-/+", "delete": "-",
           "error": "!", "noop": " "}
COLOURS = {"create": "green", "adopt": "cyan", "update": "yellow", "replace": "magenta",
           "delete": "red", "error": "red", "noop": None}
VERBS = {"create": "will be created", "adopt": "will be adopted (taken over, not recreated)",
         "update": "will be updated in place", "replace": "must be replaced",
         "delete": "will be destroyed", "error": "cannot be planned", "noop": "is up to date"}
OBSERVED = {"create": "is missing", "adopt": "could be adopted", "update": "has drifted",
            "replace": "has drifted in a way that needs replacement", "delete": "would be destroyed"}


def plan_json(plan: Plan, durations: Durations | None = None) -> str:
    return json.dumps(plan.to_json(durations or agent_durations()), indent=2, default=json_default)


def format_value(value: Any, sensitive: bool = False) -> str:
    if sensitive:
        return "(sensitive value)"
    return json.dumps(value, default=json_default, ensure_ascii=False)


def _style(text: str, action: str) -> str:
    colour = COLOURS.get(action)
    return click.style(text, fg=colour) if colour else text


def _field_line(action: str, f: FieldChange) -> str:
    before = format_value(f.before, f.sensitive)
    after = format_value(f.after, f.sensitive)
    if action == "create" or f.before is None:
        line, sym = f"{f.path} = {after}", "+"
    elif f.after is None:
        line, sym = f"{f.path} = {before}", "-"
    else:
        line, sym = f"{f.path} = {before} -> {after}", "~"
    if f.ignored:
        return f"      # {line}  (ignored: metadata.ignore)"
    replaces = f.forces_replacement and action in ("replace", "adopt")
    mark = click.style("  # forces replacement", fg="magenta") if replaces else ""
    return f"      {_style(sym, {'+': 'create', '-': 'delete', '~': 'update'}[sym])} {line}{mark}"


def render_change(change: Change, durations: Durations | None = None) -> list[str]:
    action = change.action
    observing = (change.policy == "observe" or change.paused) and action not in ("noop", "error")
    verb = OBSERVED.get(action, VERBS[action]) if observing else VERBS[action]
    if action == "noop" and change.live and change.live.pending:
        verb = "has nothing to change; AWS is still working on it"
    header = f"  # {change.ref} {verb}"
    if observing:
        header += " (paused: not changed)" if change.paused else " (policy: observe, not changed)"
    lines = [click.style(header, bold=True)]
    if change.error:
        lines.append(_style(f"  ! {change.error}", "error"))
        return lines
    lines.append(_style(f"{SYMBOLS[action]:>3} {change.kind} {change.name!r} {{", action))
    lines += [_field_line(action, f) for f in change.fields]
    lines.append("    }")
    lines += _pending_lines(change, durations or Durations(None))
    lines += [f"    note: {n}" for n in change.notes]
    if change.refused:
        lines.append(_style(f"    refused: {change.refused}", "error"))
    if change.window:
        lines.append(_style(f"    blocked by {change.window} (applied once the window allows)", "update"))
    if change.waiting:
        lines.append(_style(f"    {change.waiting} (nothing is sent for it until then)", "update"))
    return lines


def _pending_lines(change: Change, durations: Durations) -> list[str]:
    """What AWS is doing, and the steps of a change AWS takes one at a time (which wait, for what; how long
    AWS usually takes for each)."""
    lines = []
    live = change.live
    if live and live.pending:
        since = f" since {live.pending_since}" if live.pending_since else ""
        lines.append(_style(f"    pending: {live.pending}{since}", "update"))
    if len(change.steps) > 1 or any(s.wait for s in change.steps):
        lines.append("    steps (in the order AWS takes them; a step that waits is taken up by a later cycle):")
        for i, step in enumerate(change.steps, 1):
            wait = _style(f"  [waits: {step.wait}]", "update") if step.wait else ""
            lines.append(f"      {i}. {step.description}{_takes(step.takes, durations)}{wait}")
    elif len(change.steps) == 1 and change.steps[0].takes:
        lines.append(f"    AWS then works on it{_takes(change.steps[0].takes, durations)}")
    return lines


def _takes(work: str | None, durations: Durations) -> str:
    if not work:
        return ""
    e = durations.expected(work)
    return click.style(f"  (AWS takes ~{spoken(e.seconds)}, {e.source})", dim=True)


def render_plan(plan: Plan, durations: Durations | None = None) -> str:
    durations = durations or agent_durations()
    shown = [c for c in plan.changes if c.is_change or c.action == "error"
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
        out.append(f"AWS should finish this in about {spoken(expected)} (the longest chain of steps, by AWS's typical "
                   "durations or what this agent has observed).")
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


def render_report(report: ApplyReport) -> str:
    out: list[str] = []
    for o in report.outcomes:
        if o.status == "applied":
            out.append(_style(f"{o.change.ref}: {o.change.action} complete "
                              f"({o.duration_s:.1f}s)", "create"))
        elif o.status == "pending":
            out.append(_style(f"{o.change.ref}: {o.change.action} in progress: {o.message}", "update"))
        elif o.status == "waiting":
            out.append(_style(f"{o.change.ref}: {o.message}", "update"))
        else:
            out.append(_style(f"{o.change.ref}: {o.status}: {o.message}", "error"))
    done = lambda *acts: report.count("applied", acts)  # noqa: E731
    failed, refused = report.count("failed"), report.count("refused")
    pending, waiting = report.count("pending"), report.count("waiting")
    verdict = ("Apply complete!" if report.ok else "Apply finished with errors." if failed
               else "Apply finished; some changes were refused.")
    out.append(f"{verdict} Resources: {done('create', 'replace')} added, {done('adopt')} adopted, "
               f"{done('update')} changed, {done('delete', 'replace')} destroyed"
               + (f", {pending} in progress" if pending else "")
               + (f", {waiting} waiting for another resource" if waiting else "")
               + (f", {refused} refused by a safety rule (see above)" if refused else "")
               + (f", {failed} failed." if failed else "."))
    if pending:
        out.append("AWS is still working on what is in progress; its next steps are taken by the next apply or "
                   "the agent's next cycle (apply --wait carries them through now).")
    return "\n".join(out)


# ---------------------------------------------------------------------------- markdown (a pull request comment)

MARKDOWN_ICONS = {"create": "🟢", "adopt": "🔵", "update": "🟡", "replace": "🟣", "delete": "🔴", "error": "❗",
                  "noop": "⚪"}


def render_markdown(plan: Plan, title: str, durations: Durations | None = None) -> str:
    """The plan as a pull request comment: a summary line, then one collapsible section per resource that
    changes (or cannot be planned), with its fields as a diff, its steps and AWS's expected time. Secrets are
    masked as in every rendering; nothing here is coloured."""
    durations = durations or agent_durations()
    shown = [c for c in plan.changes if c.is_change or c.action == "error"]
    out = [f"### {title}", "", f"**{summary_line(plan)}**"]
    expected = plan.expected_seconds(durations) if plan.has_changes else 0
    if expected:
        out.append(f"AWS should finish this in about {spoken(expected)}.")
    out.append("")
    for change in shown:
        out += _markdown_change(change, durations)
    if plan.unmanaged:
        out += ["<details><summary>❔ Unmanaged: tagged as reconciler's, declared by no spec (left alone)</summary>",
                "", *[f"- `{o.kind}/{o.name}` ({o.id})" for o in plan.unmanaged], "", "</details>", ""]
    return "\n".join(out).rstrip() + "\n"


def _markdown_change(change: Change, durations: Durations) -> list[str]:
    action = change.action
    observing = (change.policy == "observe" or change.paused) and action not in ("noop", "error")
    verb = OBSERVED.get(action, VERBS[action]) if observing else VERBS[action]
    summary = f"{MARKDOWN_ICONS[action]} <code>{_html(change.ref)}</code> {verb}"
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
                takes = f"~{spoken(e.seconds)}, {_html(e.source)}"
            lines.append(f"| {i} | {_cell(step.description)} | {_cell(takes)} | {_cell(step.wait or '')} |")
        lines.append("")
    for text in [*(f"note: {n}" for n in change.notes),
                 *([f"refused: {change.refused}"] if change.refused else []),
                 *([f"blocked by {change.window}"] if change.window else []),
                 *([change.waiting] if change.waiting else [])]:
        lines.append(f"- {_html(text)}")
    return [*lines, "", "</details>", ""]


def _markdown_field(action: str, f: FieldChange) -> str:
    before, after = format_value(f.before, f.sensitive), format_value(f.after, f.sensitive)
    if f.ignored:
        return f"# {f.path} = {before} -> {after}  (ignored: metadata.ignore)"
    if action == "create" or f.before is None:
        return f"+ {f.path} = {after}"
    if f.after is None:
        return f"- {f.path} = {before}"
    return f"- {f.path} = {before}\n+ {f.path} = {after}" + ("  # forces replacement" if f.forces_replacement
                                                               else "")


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: str) -> str:
    return _html(text).replace("|", "\\|").replace("\n", " ")
