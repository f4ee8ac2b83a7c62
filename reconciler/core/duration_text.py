"""Durations as people write them: `90`, `30s`, `5m`, `1h`."""

from __future__ import annotations

import re

from reconciler.core.errors import ReconcilerError

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str, option: str = "--interval") -> float:
    """`90`, `30s`, `5m`, `1h` -> seconds (more than 0); `option` names it in the error."""
    match = _DURATION.fullmatch(text)
    if not match:
        raise ReconcilerError(f"{option} {text!r} is not a duration like 30s, 5m or 1h")
    seconds = float(match.group(1)) * UNITS[match.group(2)]
    if seconds <= 0:
        raise ReconcilerError(f"{option} {text!r} must be longer than 0 seconds")
    return seconds


def format_duration(seconds: float) -> str:
    """3600 -> `1h`, 90 -> `1m30s`, 2.5 -> `2.5s`: how messages show a duration."""
    if seconds < 60:
        return f"{seconds:g}s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return "".join(f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (rest, "s")) if v) or "0s"
