"""What this thread's AWS calls are: the operation in flight (it names the call in an error), and whether they
are the background's (the lease's heartbeat, the event queue's polls), counted apart from the cycle's."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class _InFlight(threading.local):
    operation: str | None = None
    background: bool = False


inflight = _InFlight()


def count_as_background() -> None:
    """Count this thread's calls apart from the cycle's (the lease's heartbeat thread calls it)."""
    inflight.background = True


@contextlib.contextmanager
def background_calls() -> Iterator[None]:
    """Count the calls made inside apart from the cycle's (the event queue's polls), on this thread."""
    before = inflight.background
    inflight.background = True
    try:
        yield
    finally:
        inflight.background = before


def current_operation() -> str | None:
    """The last AWS operation started on this thread (names the call in errors)."""
    return inflight.operation
