"""What the agent's HTTP port shows, in one place: the status document (`/status`, the page), the events
(`/events`) and the metrics (`/metrics`). The reconcile loop writes it through the methods below; the HTTP
side reads it and knows nothing of the loop (controller-runtime's status and event recorders)."""

from __future__ import annotations

import collections
import json
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.agent.serve.metrics import Metrics
from reconciler.agent.tell.events import Events

CHART_CYCLES = 60
_REF = re.compile(r"[A-Z][A-Za-z]*/[^/\s]+")  # Kind/name


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _progress_now(progress: dict[str, Any]) -> dict[str, Any]:
    """A pending operation's progress as of now: elapsed against expected, and whether it is slow."""
    elapsed = max(0.0, time.time() - progress["since"])
    shown = {k: v for k, v in progress.items() if k != "since"}
    return {**shown, "elapsedSeconds": round(elapsed, 1), "slow": elapsed > progress["slowAfterSeconds"],
            "startedAt": datetime.fromtimestamp(progress["since"], UTC).isoformat(timespec="seconds")}


class StatusStore:
    """The agent's state as its readers see it; thread-safe."""

    def __init__(self, events: Events, interval_s: float, *, actions: bool = False,
                 lease: dict[str, Any] | None = None, paused_file: Path | None = None):
        self.events = events
        self.metrics = Metrics()
        self.interval_s = interval_s
        self.actions = actions  # the page offers actions (reconcile now, pause) only with a token
        self.lock = threading.Lock()
        self.started_at = time.monotonic()
        self.last_finished: float | None = None
        self.busy_since: float | None = None  # a reconcile is under way since then
        self.running = True  # False once the loop has stopped (/healthz turns red)
        self.next_due: Callable[[], dict[str, float]] = dict  # ref -> seconds until it is checked again
        self._doc: dict[str, Any] = {"lastAppliedRevision": None, "lastAttemptedRevision": None, "specError": None,
                                     "sourceError": None, "lastCycle": None, "health": [], "site": [], "cyclesDone": 0,
                                     "lease": lease or {"role": "disabled"}}
        self._resources: dict[str, dict[str, Any]] = {}  # ref -> its entry, in spec order
        self._health: dict[str, dict[str, Any]] = {}     # cluster -> its last check
        self._site: dict[str, dict[str, Any]] = {}       # distribution -> its last site check
        self._cycles: collections.deque[dict[str, Any]] = collections.deque(maxlen=CHART_CYCLES)
        self._paused_file = paused_file
        self.paused: set[str] = self._load_paused()  # refs paused by an operator on the page

    # ------------------------------------------------------------------ read

    def snapshot(self) -> dict[str, Any]:
        """The status document: what /status serves and the page renders."""
        due = self.next_due()
        with self.lock:
            resources = [{**entry, **({"nextCheckInSeconds": round(due[ref], 1)} if ref in due else {}),
                          **({"progress": _progress_now(entry["progress"])} if entry.get("progress") else {})}
                         for ref, entry in self._resources.items()]
            return {**self._doc, "resources": resources, "health": list(self._health.values()),
                    "site": list(self._site.values()), "cycles": list(self._cycles),
                    "intervalSeconds": self.interval_s, "actions": self.actions,
                    "pausedByOperator": sorted(self.paused)}

    def get(self, key: str) -> Any:
        with self.lock:
            return self._doc.get(key)

    def resource(self, ref: str) -> dict[str, Any] | None:
        with self.lock:
            entry = self._resources.get(ref)
            return dict(entry) if entry else None

    def alive(self) -> bool:
        """/healthz: the loop runs, and no reconcile has been under way for more than three intervals (plus
        30 s of grace for a slow one). Between reconciles it is idle by design (each resource is due at its
        own interval), not stuck."""
        if not self.running:
            return False
        busy = self.busy_since
        return busy is None or time.monotonic() - busy <= 3 * self.interval_s + 30

    def started(self) -> None:
        """A reconcile begins."""
        self.busy_since = time.monotonic()

    # ------------------------------------------------------------------ write

    def update(self, **values: Any) -> None:
        with self.lock:
            self._doc.update(values)

    def put_resources(self, entries: dict[str, dict[str, Any]], order: list[str]) -> None:
        """The entries of the resources a reconcile looked at; the others keep theirs; `order` is the spec
        set's (refs no longer in it are dropped)."""
        with self.lock:
            merged = {**self._resources, **entries}
            self._resources = {ref: merged[ref] for ref in order if ref in merged}

    def annotate(self, ref: str, **values: Any) -> None:
        """Add to one resource's entry (what is known only after it was recorded)."""
        with self.lock:
            if ref in self._resources:
                self._resources[ref] = {**self._resources[ref], **values}

    def put_health(self, results: list[dict[str, Any]], clusters: list[str]) -> None:
        """The last check of each cluster checked; `clusters`: every cluster of the spec set."""
        with self.lock:
            merged = {**self._health, **{r["cluster"]: r for r in results}}
            self._health = {c: merged[c] for c in clusters if c in merged}

    def put_site(self, results: list[dict[str, Any]], distributions: list[str]) -> None:
        """The last site check of each distribution checked; `distributions`: every one of the spec set."""
        with self.lock:
            merged = {**self._site, **{r["distribution"]: r for r in results}}
            self._site = {d: merged[d] for d in distributions if d in merged}

    def finished(self, entry: dict[str, Any]) -> None:
        """A reconcile finished: its summary for the page's chart and /status `lastCycle`."""
        with self.lock:
            self.last_finished = time.monotonic()
            self.busy_since = None
            self._doc["lastCycle"] = {k: v for k, v in entry.items() if k not in ("changes", "errors")}
            self._doc["cyclesDone"] += 1
            self._cycles.append(entry)

    def state_counts(self) -> dict[tuple[str, str], int]:
        """(kind, state) -> how many resources are in it."""
        counts: dict[tuple[str, str], int] = {}
        with self.lock:
            for r in self._resources.values():
                counts[(r["kind"], r["state"])] = counts.get((r["kind"], r["state"]), 0) + 1
        return counts

    def set_paused(self, ref: str, paused: bool) -> None:
        """Pause or resume a resource from the page (kept in the state directory across restarts)."""
        with self.lock:
            (self.paused.add if paused else self.paused.discard)(ref)
            if self._paused_file:
                self._paused_file.parent.mkdir(parents=True, exist_ok=True)
                self._paused_file.write_text(json.dumps(sorted(self.paused)))

    def _load_paused(self) -> set[str]:
        """The refs paused before a restart (`Kind/name` only: anything else in the file is not a resource)."""
        try:
            found = json.loads(self._paused_file.read_text()) if self._paused_file else []
        except (OSError, ValueError):
            return set()
        return {r for r in found if isinstance(r, str) and _REF.fullmatch(r)} if isinstance(found, list) else set()
