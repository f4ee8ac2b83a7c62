"""A local journal of creations in flight, for resources AWS cannot tag at creation (S3).

Before such a create, the agent records its intent here; once the resource carries its
ownership tags the record is removed. A resource found untagged *with* a record is one this
agent was creating when it was interrupted (even by SIGKILL), so it is finished, not refused.
The journal lives in the state directory (RECONCILER_STATE_DIR, default ~/.cache/reconciler).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reconciler.core.statedir import state_dir


def _path() -> Path:
    return state_dir() / "intents.json"


@contextmanager
def _journal() -> Iterator[dict[str, float]]:
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        try:
            entries = json.loads(f.read() or "{}")
        except json.JSONDecodeError:
            entries = {}
        yield entries
        f.seek(0)
        f.truncate()
        f.write(json.dumps(entries))
        f.flush()
        os.fsync(f.fileno())


def record(ref: str) -> None:
    with _journal() as entries:
        entries[ref] = time.time()


def forget(ref: str) -> None:
    with _journal() as entries:
        entries.pop(ref, None)


def pending(ref: str) -> bool:
    path = _path()
    if not path.exists():
        return False
    with _journal() as entries:
        return ref in entries
