"""Per-resource exponential backoff: a resource that fails is looked at again after the interval, doubling with each
failure in a row, capped; a success forgets it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


class Backoff:
    """Per-resource exponential backoff: after n failures in a row, base * 2^(n-1), capped."""

    def __init__(self, base_s: float, cap_s: float):
        self.base_s, self.cap_s = base_s, cap_s
        self.failures: dict[str, int] = {}
        self.retry_at: dict[str, float] = {}

    def waiting(self, ref: str) -> float:
        """Seconds until `ref` is tried again (0 = not backing off)."""
        return max(0.0, self.retry_at.get(ref, 0.0) - time.monotonic())

    def failed(self, ref: str) -> float:
        n = self.failures[ref] = self.failures.get(ref, 0) + 1
        delay = min(self.base_s * 2 ** (n - 1), self.cap_s)
        self.retry_at[ref] = time.monotonic() + delay
        return delay

    def succeeded(self, ref: str) -> None:
        self.failures.pop(ref, None)
        self.retry_at.pop(ref, None)
