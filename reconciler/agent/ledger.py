"""What the agent last converged each resource to, and the operations it has open: kept in the state directory
(`ledger.json`), so that a restart neither takes the agent's own earlier work for drift nor forgets an operation
AWS is still carrying out.

- converged: ref -> the fingerprint of the spec the resource last matched (and the revision, the time).
- open: ref -> an operation the agent started and AWS has not finished: why (create, sync, drift), the work AWS is
  doing (TYPICAL_DURATIONS), since when, the fields it changes, who made the drift, whether `operation.slow` went.

Why a change is made (`cause`): a resource never converged, or whose spec changed since, is brought to a new
spec (`sync`, `create`); one whose spec is unchanged but whose live state differs has drifted (`drift`). The
later steps of a creation (items, point-in-time recovery once the table is ACTIVE) belong to the creation.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.core.plainjson import json_default

if TYPE_CHECKING:
    from reconciler.engine.changes import Change


@dataclass
class Operation:
    """One change the agent made that AWS is still carrying out."""

    cause: str                      # create | sync | drift
    action: str
    started: float                  # when the agent sent its first step (epoch seconds)
    revision: str | None = None
    fields: list[dict[str, Any]] = field(default_factory=list)
    work: str | None = None         # the work AWS is doing now (TYPICAL_DURATIONS)
    work_started: float | None = None
    who: dict[str, Any] | None = None
    slow_sent: bool = False


def fingerprint(change: Change) -> str:
    """The spec a resource is brought to, as one digest (its spec section: a policy or a pause changes
    nothing it is brought to)."""
    text = json.dumps(change.resource.spec.spec, sort_keys=True, default=json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Ledger:
    """Thread-safe; persisted at `path` after each change when given."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self._lock = threading.Lock()
        self.converged: dict[str, dict[str, Any]] = {}
        self.open: dict[str, Operation] = {}
        self._dirty = False
        self._load()

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text())
            self.converged = {str(k): dict(v) for k, v in (data.get("converged") or {}).items()}
            self.open = {str(k): Operation(**v) for k, v in (data.get("open") or {}).items()}
        except (OSError, ValueError, TypeError, AttributeError):
            self.converged, self.open = {}, {}  # a damaged ledger: corrections are then announced as syncs

    def _save(self) -> None:
        """Marks the ledger changed; `flush()` writes it (once per reconcile, however many resources)."""
        self._dirty = True

    def flush(self) -> None:
        """Write the ledger if it changed since the last write."""
        with self._lock:
            if self.path is None or not self._dirty:
                return
            self._dirty = False
            data = {"converged": self.converged, "open": {k: asdict(v) for k, v in self.open.items()}}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=json_default))
            tmp.replace(self.path)

    def cause(self, change: Change) -> str:
        """create | sync | drift: why this change is made (see the module's docstring)."""
        with self._lock:
            operation = self.open.get(change.ref)
            if change.action == "create" or (operation is not None and operation.cause == "create"):
                return "create"
            record = self.converged.get(change.ref)
        return "drift" if record is not None and record["spec"] == fingerprint(change) else "sync"

    def started(self, ref: str, operation: Operation, busy: bool) -> tuple[str, float] | None:
        """A change AWS carries out asynchronously was made (its first step), or goes on (already open): with
        new work sent, or none (`busy`: AWS still works on what was sent; otherwise it waits for a rule of
        AWS's). Returns the work now over, with how long it ran to the look that found it over, if any (none when
        a create is sent again: the work open before, in a sandbox since gone say, was never seen to end)."""
        now = time.time()
        with self._lock:
            current = self.open.get(ref)
            if current is None or _created_again(current, operation):
                self.open[ref] = operation
                self._save()
                return None
            over = (current.work, now - current.work_started) if current.work and current.work_started else None
            if operation.work:
                current.work, current.work_started, current.slow_sent = operation.work, operation.work_started, False
            elif not busy and current.work:
                current.work, current.work_started = None, None
            else:
                over = None
            if over is not None:
                self._save()
            return over

    def converge(self, change: Change, revision: str | None, when: str) -> Operation | None:
        """The resource matches its spec: remembered; the operation that got it there (if any) is closed and
        returned."""
        spec = fingerprint(change)
        with self._lock:
            known = self.converged.get(change.ref)
            done = self.open.pop(change.ref, None)
            if done is None and known is not None and known["spec"] == spec:
                return None  # nothing new: no write
            self.converged[change.ref] = {"spec": spec, "revision": revision, "at": when}
            self._save()
            return done

    def mark_slow(self, ref: str) -> bool:
        """True the first time an operation is found slow (send `operation.slow` once)."""
        with self._lock:
            operation = self.open.get(ref)
            if operation is None or operation.slow_sent:
                return False
            operation.slow_sent = True
            self._save()
            return True

    def get(self, ref: str) -> Operation | None:
        with self._lock:
            return self.open.get(ref)

    def forget(self, refs: set[str]) -> None:
        """Resources no spec declares any more."""
        with self._lock:
            gone = (set(self.converged) | set(self.open)) - refs
            for ref in gone:
                self.converged.pop(ref, None)
                self.open.pop(ref, None)
            if gone:
                self._save()


def _created_again(current: Operation, operation: Operation) -> bool:
    """The same create work sent once more: the resource was not there, so the work open before never ended."""
    return (operation.action == current.action == "create" and operation.work is not None
            and operation.work == current.work)
