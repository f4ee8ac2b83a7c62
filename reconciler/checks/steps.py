"""What every data-path check is made of: timed steps, one after another, the first failure ending the check
with its likely cause. The Redis check and the site check are both written with these."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class CheckStep:
    """One step of a check, as `reconciler health` prints it: its name, ok or not, its latency, what it found."""

    name: str
    ok: bool
    ms: float
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"step": self.name, "ok": self.ok, "ms": round(self.ms, 2), **({"detail": self.detail}
                                                                             if self.detail else {})}


class StepFailed(Exception):
    """A step found the data path broken: what failed, and the likely cause in words."""

    def __init__(self, message: str, cause: str):
        super().__init__(message)
        self.cause = cause


@dataclass
class CheckResult:
    """The outcome of one check: healthy, unhealthy (with its cause), or skipped (with why)."""

    steps: list[CheckStep] = field(default_factory=list, kw_only=True)
    error: str | None = field(default=None, kw_only=True)
    cause: str | None = field(default=None, kw_only=True)
    skipped: str | None = field(default=None, kw_only=True)

    @property
    def healthy(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else ("healthy" if self.healthy else "unhealthy")

    @property
    def total_ms(self) -> float:
        return sum(s.ms for s in self.steps)

    def failed(self, exc: StepFailed) -> None:
        self.error, self.cause = str(exc), exc.cause

    def outcome_json(self) -> dict[str, Any]:
        """The status, the steps and, when there is one, the error, its cause and why it was skipped."""
        out: dict[str, Any] = {"status": self.status, "steps": [s.to_json() for s in self.steps]}
        for key in ("error", "cause", "skipped"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out


def timed(result: CheckResult, name: str, action: Callable[[], T], *, detail: bool = True) -> T:
    """Run one step, recording its latency; what it returns, when text and `detail`, is its detail. A failure
    is recorded as the step's and raised again, named after it."""
    started = time.perf_counter()
    try:
        value = action()
    except StepFailed as exc:
        result.steps.append(CheckStep(name, False, (time.perf_counter() - started) * 1000, str(exc)))
        raise StepFailed(f"{name} failed: {exc}", exc.cause) from None
    said = value if detail and isinstance(value, str) else ""
    result.steps.append(CheckStep(name, True, (time.perf_counter() - started) * 1000, said))
    return value
