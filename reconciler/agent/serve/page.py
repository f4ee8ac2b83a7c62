"""The status page at `/`: server-rendered HTML from the agent's status and events (Jinja2, autoescaped),
complete without JavaScript, no external assets (it works on a bastion with no internet)."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

from reconciler.core.duration_text import format_duration
from reconciler.core.plainjson import dumps
from reconciler.core.vocabulary import ResourceState

STATES = tuple(ResourceState)


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("reconciler.agent.serve", "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["duration"] = format_duration
    env.policies["json.dumps_function"] = dumps  # `tojson`: DynamoDB's numbers and the like, as plain JSON
    return env


def overall(status: dict[str, Any]) -> str:
    """healthy | progressing | degraded | unknown, at a glance."""
    resources = status.get("resources") or []
    if status.get("lastCycle") is None:
        return "unknown"
    unhealthy = [h for h in status.get("health") or [] if h.get("status") == "unhealthy"]
    if status.get("specError") or unhealthy or any(r["state"] == ResourceState.ERROR for r in resources):
        return "degraded"
    if any(ResourceState(r["state"]).progressing for r in resources):
        return "progressing"
    return "healthy"


def sync(status: dict[str, Any]) -> str:
    states = {r["state"] for r in status.get("resources") or []}
    return "in sync" if states <= {ResourceState.IN_SYNC} else "drifted"


def chart(cycles: list[dict[str, Any]], width: int = 600, height: int = 80, slots: int = 60) -> dict[str, Any]:
    """Bars for the last cycles' durations (red: failed), oldest left, one slot per kept cycle, with a
    dot above a cycle that changed something."""
    if not cycles:
        return {"bars": [], "width": width, "height": height, "top": 0}
    top = max(c["durationSeconds"] for c in cycles) or 1
    step = width / slots
    bars = []
    for i, c in enumerate(cycles):
        h = max(2.0, (height - 14) * c["durationSeconds"] / top)
        bars.append({"x": round(i * step + 1, 1), "w": round(max(step - 2, 1), 1), "y": round(height - h, 1),
                     "h": round(h, 1), "failed": c["result"] != "ok", "changes": c.get("changes", 0),
                     "title": f"{c['finished']}: {c['durationSeconds']}s, {c.get('changes', 0)} change(s), "
                              f"{c.get('errors', 0)} error(s)"})
    return {"bars": bars, "width": width, "height": height, "top": round(top, 2)}


def render(status: dict[str, Any], events: list[dict[str, Any]], exposure: str | None = None,
           signed_in: bool = False) -> str:
    """The page; `exposure`: a warning for its readers (the port is open to other machines without a read
    token); `signed_in`: readers signed in (the page offers to sign out)."""
    counts = {s: 0 for s in STATES}
    for r in status.get("resources") or []:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    return _environment().get_template("status.html").render(
        status=status, events=events[:30], overall=overall(status), sync=sync(status), counts=counts,
        chart=chart(status.get("cycles") or []), exposure=exposure, signed_in=signed_in)


def render_signin(problem: str = "") -> str:
    """The sign-in form of an agent started with a read token."""
    return _environment().get_template("signin.html").render(problem=problem)
