"""How long AWS will take: for each kind of asynchronous work (TYPICAL_DURATIONS names them: `dynamodb.throughput`,
`elasticache.scale`, `cloudfront.deploy`...) a median and a p90.

Until this agent has seen a few of its own, the figures are AWS's typical duration (the prior; AWS documents no
spread, so the p90 is taken as twice it: our assumption, said in docs/agent.md). From `ENOUGH` observations on,
they are the median and p90 of the last `KEPT` this agent measured, kept in the state directory
(`durations.json`), so they survive restarts and adapt to the account. Durations are stored in a real account's
seconds (observed time / the sandbox's time factor) and given back in the time of the AWS this process talks
to, so the sandbox's scaled time reads the same table.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.aws.endpoints import aws_time_factor
from reconciler.aws.typical_durations import TYPICAL_DURATIONS
from reconciler.core.statedir import state_dir

ENOUGH = 3      # observations before they replace the prior
KEPT = 50       # the most recent observations kept per kind of work
PRIOR_SPREAD = 2.0  # p90 / median while only the prior is known (ours: AWS documents no spread)
SLOW = 1.5      # an operation running past SLOW x its p90 is slow


@dataclass(frozen=True)
class Expectation:
    """One kind of work's expected duration, in the time of the AWS this process talks to."""

    work: str
    seconds: float    # median
    p90: float
    source: str       # "typical (AWS)" | "observed (n)"

    def slow_after(self, look_s: float = 0.0) -> float:
        """Past this many seconds the work is slow: 1.5 x its p90, plus the time until the agent looks again
        (it cannot see the work end sooner)."""
        return SLOW * self.p90 + look_s

    def to_json(self) -> dict[str, Any]:
        return {"work": self.work, "expectedSeconds": round(self.seconds, 1), "p90Seconds": round(self.p90, 1),
                "source": self.source}


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class ExpectedDurations:
    """The observed durations of one agent (thread-safe; persisted at `path` when given)."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self._lock = threading.Lock()
        self._seen: dict[str, list[float]] = self._load()

    def _load(self) -> dict[str, list[float]]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
            return {str(k): [float(x) for x in v][-KEPT:] for k, v in data.items() if k in TYPICAL_DURATIONS}
        except (OSError, ValueError, TypeError, AttributeError):
            return {}  # a damaged file only loses the history: the priors hold

    def expected(self, work: str) -> Expectation:
        """The median and p90 for `work` (observed once there are ENOUGH, else AWS's typical figure)."""
        factor = aws_time_factor()
        with self._lock:
            seen = list(self._seen.get(work, []))
        if len(seen) >= ENOUGH:
            return Expectation(work, _percentile(seen, 0.5) * factor, _percentile(seen, 0.9) * factor,
                               f"observed ({len(seen)})")
        typical = TYPICAL_DURATIONS[work].seconds if work in TYPICAL_DURATIONS else 0.0
        return Expectation(work, typical * factor, typical * PRIOR_SPREAD * factor, "typical (AWS)")

    def observed(self, work: str, seconds: float) -> None:
        """Record one finished operation of `work` that took `seconds` (of this process's time)."""
        factor = aws_time_factor()
        if work not in TYPICAL_DURATIONS or factor <= 0 or seconds < 0:
            return  # instant AWS: nothing to learn
        with self._lock:
            kept = self._seen.setdefault(work, [])
            kept.append(round(seconds / factor, 3))
            del kept[:-KEPT]
            snapshot = {k: list(v) for k, v in self._seen.items()}
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(snapshot, indent=1))
            tmp.replace(self.path)


def step_seconds(takes: str | None, durations: ExpectedDurations) -> float:
    """A step's expected duration: the work AWS does after it, or 0 for a call AWS answers at once."""
    return durations.expected(takes).seconds if takes else 0.0


def expected_durations() -> ExpectedDurations:
    """The durations this machine's agent has observed (its state directory), with AWS's figures as the prior."""
    return ExpectedDurations(state_dir() / "durations.json")


def in_words(seconds: float) -> str:
    """`45s`, `4 min`, `1.5 h` (`<1s` at the sandbox's scaled time): a duration as a person reads it."""
    if seconds < 1:
        return "<1s"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.0f} days"
