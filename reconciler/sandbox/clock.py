"""AWS's time in the sandbox: how long AWS typically takes (aws/typical_durations.py), scaled, and transitions
that finish when that time has passed.

A resource that AWS keeps busy (a table CREATING, a cache `modifying`, a distribution
InProgress) is given a transition: its busy state now, and an effect that runs once the scaled
duration has passed (the state becomes ACTIVE/available/Deployed, a deferred change lands). The
effects run lazily, at the start of the next request to the sandbox (`settle`), so no timer
thread touches moto's models and `instant` (factor 0) finishes every transition at once.

Each request runs with its sandbox's clock as the thread's current one (`current()`), which the
service modules read; several sandboxes in one process keep their own time.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator

from reconciler.aws.typical_durations import TYPICAL_DURATIONS


def parse_aws_time(text: str | float | None) -> float:
    """`instant` -> 0, `aws` -> 1, `0.01` -> 0.01 (AWS's typical durations times the factor)."""
    if text is None:
        return 0.0
    if isinstance(text, int | float):
        factor = float(text)
    elif text.strip().lower() == "instant":
        return 0.0
    elif text.strip().lower() == "aws":
        return 1.0
    else:
        try:
            factor = float(text)
        except ValueError:
            raise ValueError(f"AWS time {text!r} is not 'instant', 'aws' or a factor such as 0.01") from None
    if not 0 <= factor <= 100:
        raise ValueError(f"AWS time factor {factor} is out of range (0 to 100)")
    return factor


class AwsTime:
    """One sandbox's clock: durations scaled by `factor`, transitions due at a monotonic time."""

    def __init__(self, factor: float = 0.0):
        self.factor = factor
        self.slower: dict[str, float] = {}  # name -> how many times longer than typical AWS takes now (a test's)
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._lock = threading.RLock()

    def seconds(self, name: str) -> float:
        """The scaled duration of one kind of work (see TYPICAL_DURATIONS), times how much slower AWS is asked to be."""
        return TYPICAL_DURATIONS[name].seconds * self.factor * self.slower.get(name, 1.0)

    def after(self, name: str, effect: Callable[[], None]) -> None:
        """Run `effect` once the scaled duration of `name` has passed (at once when instant)."""
        delay = self.seconds(name)
        if delay <= 0:
            effect()
            return
        with self._lock:
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), effect))

    def settle(self) -> None:
        """Finish every transition whose time has come, in the order they fall due."""
        with self._lock:
            now = time.monotonic()
            while self._due and self._due[0][0] <= now:
                _, _, effect = heapq.heappop(self._due)
                effect()

    def finish_all(self) -> None:
        """Finish every transition now (a test's fast-forward)."""
        with self._lock:
            while self._due:
                heapq.heappop(self._due)[2]()

    def reset(self) -> None:
        """Forget every transition (the models they would change are being reset)."""
        with self._lock:
            self._due.clear()
            self.slower.clear()

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._due)


_INSTANT = AwsTime(0.0)
_local = threading.local()


def current() -> AwsTime:
    """The clock of the sandbox serving this thread's request (instant outside a request)."""
    return getattr(_local, "clock", None) or _INSTANT


@contextlib.contextmanager
def using(clock: AwsTime) -> Iterator[AwsTime]:
    """Serve one request on `clock`: transitions due by now are finished first."""
    previous = getattr(_local, "clock", None)
    _local.clock = clock
    try:
        clock.settle()
        yield clock
    finally:
        _local.clock = previous
