"""A long-running agent's memory: glibc's allocator gives each thread that contends for it an arena of its own
(up to 8 per core), and a Python process whose reads run on a thread pool fragments them into tens of MiB
that are never returned. The daemon caps them before its threads start (mallopt M_ARENA_MAX, as the
MALLOC_ARENA_MAX variable would) and returns free pages after each reconcile (malloc_trim). Elsewhere than
glibc on Linux both do nothing. bench/daemon_memory.py measures the effect (docs/performance.md)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from typing import Any

M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2


@functools.cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def cap_arenas() -> bool:
    """At most ARENAS malloc arenas (unless MALLOC_ARENA_MAX says otherwise); True when it took effect."""
    libc = _libc()
    if libc is None or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return bool(libc.mallopt(M_ARENA_MAX, ARENAS))


def trim() -> None:
    """Give the allocator's free pages back to the system."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
