"""Change windows (`ChangeWindow` specs), with Argo CD's sync-window semantics: a deny window that is
open blocks what it applies to, and deny wins; when any allow window applies to a resource, that
resource is changed only while one of them is open. `manual: true` lets a hand-run `apply` through.

A window opens at each time its cron `schedule` names (in its `timeZone`, default UTC) and stays open
for `duration`. Nothing here calls AWS.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

if TYPE_CHECKING:
    from reconciler.spec.documents import Spec
    from reconciler.spec.problems import Path_

KIND = "ChangeWindow"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Window:
    name: str
    type: str                   # deny | allow
    schedule: str
    duration: timedelta
    zone: ZoneInfo
    applies_to: tuple[str, ...]
    manual: bool

    @classmethod
    def from_spec(cls, spec: Spec) -> Window:
        s = spec.spec
        return cls(spec.name, s.get("type", "deny"), s["schedule"], _duration(s["duration"]),
                   ZoneInfo(s.get("timeZone", "UTC")), tuple(s.get("appliesTo") or ["*"]), bool(s.get("manual")))

    def applies(self, ref: str) -> bool:
        return any(fnmatch.fnmatchcase(ref, pattern) for pattern in self.applies_to)

    def open_until(self, now: datetime) -> datetime | None:
        """When the window closes, if it is open at `now`; else None."""
        local = now.astimezone(self.zone)
        started = croniter(self.schedule, local + timedelta(seconds=1)).get_prev(datetime)
        ends = started + self.duration
        return ends if started <= local < ends else None

    def next_open(self, now: datetime) -> datetime:
        return croniter(self.schedule, now.astimezone(self.zone)).get_next(datetime)


@dataclass(frozen=True)
class Blocked:
    """Why a change may not be made now, and until when."""

    window: str
    until: datetime

    def message(self) -> str:
        return f"change window {self.window!r} until {self.until.isoformat(timespec='minutes')}"


def windows_of(specs: Iterable[Spec]) -> list[Window]:
    return [Window.from_spec(s) for s in specs if s.kind == KIND]


def blocked(windows: Sequence[Window], ref: str, now: datetime | None = None, manual: bool = False) -> Blocked | None:
    """None when `ref` may be changed at `now`; else the window that blocks it and until when."""
    now = now or datetime.now(UTC)
    relevant = [w for w in windows if w.applies(ref) and not (manual and w.manual)]
    for window in relevant:
        if window.type == "deny" and (until := window.open_until(now)):
            return Blocked(window.name, until)
    allows = [w for w in relevant if w.type == "allow"]
    if allows and not any(w.open_until(now) for w in allows):
        first = min(allows, key=lambda w: w.next_open(now))
        return Blocked(first.name + " (allow: closed)", first.next_open(now))
    return None


def check_spec(spec: Spec) -> list[tuple[Path_, str]]:
    """What the schema cannot check: the cron expression and the time zone."""
    problems: list[tuple[Path_, str]] = []
    if not croniter.is_valid(spec.spec["schedule"]):
        problems.append((("spec", "schedule"), f"{spec.spec['schedule']!r} is not a cron expression "
                                               "(minute hour day-of-month month day-of-week)"))
    try:
        ZoneInfo(spec.spec.get("timeZone", "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        problems.append((("spec", "timeZone"), f"unknown time zone {spec.spec.get('timeZone')!r} "
                                               "(an IANA name such as Europe/Berlin)"))
    return problems


def _duration(text: str) -> timedelta:
    return timedelta(seconds=float(text[:-1]) * _UNITS[text[-1]])


def windows_status(specs: list[Spec], now: datetime) -> list[dict[str, Any]]:
    """The change windows, open (until when) or closed (next opening), for /status and the page."""
    shown = []
    for window in windows_of(specs):
        until = window.open_until(now)
        shown.append({"name": window.name, "type": window.type, "open": until is not None,
                      **({"until": until.isoformat(timespec="minutes")} if until
                         else {"next": window.next_open(now).isoformat(timespec="minutes")})})
    return shown
