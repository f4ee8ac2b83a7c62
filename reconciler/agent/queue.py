"""The work queue: every reason to look at a resource puts its ref here, with when it is due.

As controller-runtime's rate-limited work queue: a ref is in the queue at most once, at the earliest time any
reason asked for (the schedule, AWS still working, a failure's backoff, an AWS change event, a person's
"reconcile now"); a worker takes every ref due now in one batch (so a scheduled pass still reads in bulk), and
the reconcile says when each ref is due again (`requeue after`). A ref is not handed out again within
`min_gap_s` of its last take, so a burst of reasons makes one reconcile, not many.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Batch:
    """Refs due now, taken together, and why each was queued."""

    refs: list[str]
    reasons: dict[str, set[str]] = field(default_factory=dict)
    late_s: float = 0.0  # how long after it was due the earliest ref was taken (a previous batch ran long)
    seq: int = 0         # the order batches were taken in

    def why(self) -> list[str]:
        return sorted({r for reasons in self.reasons.values() for r in reasons})


class Ticket:
    """Done once every ref it was given for has been reconciled after it was queued."""

    def __init__(self, refs: Iterable[str], since: int = 0):
        self.left = set(refs)
        self.since = since  # only batches taken after this one count
        self.event = threading.Event()
        if not self.left:
            self.event.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.event.wait(timeout)


class WorkQueue:
    """Refs with due times (monotonic seconds); thread-safe."""

    def __init__(self, min_gap_s: float = 1.0, gather_s: float = 0.5):
        self.min_gap_s = min_gap_s  # a ref is handed out at most once per this
        self.gather_s = gather_s    # refs due within this of the first one go in the same batch
        self._due: dict[str, float] = {}
        self._reasons: dict[str, set[str]] = {}
        self._taken: dict[str, float] = {}
        self._tickets: list[Ticket] = []
        self._seq = 0
        self._cond = threading.Condition()
        self._closed = False

    def add(self, refs: Iterable[str], after_s: float = 0.0, reason: str = "") -> Ticket:
        """Queue refs `after_s` from now (a ref already queued keeps the earlier time)."""
        refs = list(refs)
        at = time.monotonic() + max(0.0, after_s)
        with self._cond:
            ticket = Ticket(refs, self._seq)
            for ref in refs:
                queued = self._due.get(ref)
                if queued is None or at < queued:  # sooner: this is why it is reconciled when it is
                    self._due[ref] = at
                    self._reasons[ref] = {reason} if reason else set()
                elif at == queued and reason:
                    self._reasons.setdefault(ref, set()).add(reason)
            if refs:
                self._tickets.append(ticket)
            self._cond.notify_all()
        return ticket

    def forget(self, refs: Iterable[str]) -> None:
        """Refs no spec declares any more: no longer queued."""
        with self._cond:
            for ref in refs:
                self._due.pop(ref, None)
                self._reasons.pop(ref, None)
                self._taken.pop(ref, None)
            self._settle_tickets(set(refs), self._seq + 1)

    def take(self, timeout: float | None = None) -> Batch | None:
        """Wait until a ref is due (or `timeout`, or close()); then every ref due by then, as one batch."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                ready = self._ready_at()
                if ready is not None and ready[1] <= now:
                    first = ready[1]
                    refs = sorted(r for r, at in self._effective().items() if at <= max(now, first + self.gather_s))
                    self._seq += 1
                    batch = Batch(refs, {r: self._reasons.pop(r, set()) for r in refs},
                                  late_s=max(0.0, now - self._due[ready[0]]), seq=self._seq)
                    for ref in refs:
                        del self._due[ref]
                        self._taken[ref] = now
                    return batch
                wake = ready[1] if ready else None
                if deadline is not None:
                    wake = deadline if wake is None else min(wake, deadline)
                    if now >= deadline:
                        return None
                self._cond.wait(None if wake is None else max(0.01, wake - now))
            return None

    def done(self, batch: Batch) -> None:
        """The batch has been reconciled: tickets waiting for its refs are released."""
        with self._cond:
            self._settle_tickets(set(batch.refs), batch.seq)

    def next_due(self) -> dict[str, float]:
        """Seconds until each queued ref is due (0 when overdue)."""
        now = time.monotonic()
        with self._cond:
            return {r: max(0.0, at - now) for r, at in self._effective().items()}

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._due)

    # ------------------------------------------------------------------ inside the lock

    def _effective(self) -> dict[str, float]:
        """Due times with the per-ref gap applied (a ref taken moments ago waits out the gap)."""
        return {r: max(at, self._taken.get(r, -1e18) + self.min_gap_s) for r, at in self._due.items()}

    def _ready_at(self) -> tuple[str, float] | None:
        effective = self._effective()
        if not effective:
            return None
        ref = min(effective, key=effective.__getitem__)
        return ref, effective[ref]

    def _settle_tickets(self, finished: set[str], seq: int) -> None:
        for ticket in list(self._tickets):
            if ticket.since < seq:
                ticket.left -= finished
            if not ticket.left or self._closed:
                ticket.event.set()
                self._tickets.remove(ticket)
