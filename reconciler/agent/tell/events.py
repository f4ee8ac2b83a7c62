"""The agent's events (`reconciler.event/v2`; what changed since v1: docs/events.md): a bounded history kept
in the state directory (it survives a restart, served newest first at /events), delivery to webhooks, and
readable messages to chat and paging services through apprise (Slack, Teams, Discord, PagerDuty, email...).

Delivery runs on its own thread with retries and backoff, so a receiver that is slow or down never
holds up a cycle. Each POST is the event as JSON, signed `X-Reconciler-Signature: sha256=<hex HMAC-SHA256
of the body>` with the secret in RECONCILER_WEBHOOK_SECRET. The same (type, resource, message, revision)
is sent once until it changes or clears (`clear()` when the condition is gone).
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import queue
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from reconciler.core.plainjson import dumps, json_default

EVENT_FORMAT = "reconciler.event/v2"
TYPES = ("sync.applied", "drift.detected", "drift.corrected", "operation.slow", "apply.failed", "health.degraded",
         "health.recovered", "spec.invalid", "agent.stuck", "lease.lost", "window.blocked")
HISTORY = 500
SIGNATURE_HEADER = "X-Reconciler-Signature"
log = structlog.get_logger()


@dataclass
class Event:
    type: str
    kind: str | None
    name: str | None
    message: str
    revision: str | None = None
    fields: list[dict[str, Any]] = field(default_factory=list)
    action: str | None = None                 # sync.applied: create | update | replace | adopt | delete
    who: dict[str, Any] | None = None         # drift: who changed it (principal, call, time), where CloudTrail says
    durationSeconds: float | None = None      # drift.corrected: from the correction sent to AWS having finished
    progress: dict[str, Any] | None = None    # operation.slow: elapsedSeconds, expectedSeconds, p90Seconds, work
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    format: str = EVENT_FORMAT

    @property
    def key(self) -> tuple[Any, ...]:
        """What makes two events "the same" for notifications."""
        return (self.type, self.kind, self.name, self.message, self.revision)

    @property
    def subject(self) -> tuple[str, str | None, str | None]:
        """The condition an event reports on (a resource's drift, its health...)."""
        return (self.type, self.kind, self.name)

    def to_json(self) -> dict[str, Any]:
        """The event as receivers get it: the optional fields only when they say something."""
        return {"format": self.format, **{k: v for k, v in asdict(self).items()
                                          if k != "format" and (v is not None or k in ("kind", "name", "revision"))}}


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Events:
    """The history (bounded, persisted as JSON lines) and the notifications of one agent."""

    def __init__(self, state_dir: Path | None, webhooks: list[str] = (), secret: str | None = None,
                 retries: int = 5, timeout_s: float = 5, notify: list[str] = ()):
        self.path = state_dir / "events.jsonl" if state_dir else None
        self.history: collections.deque[dict[str, Any]] = collections.deque(maxlen=HISTORY)
        self.webhooks, self.secret, self.retries, self.timeout_s = list(webhooks), secret, retries, timeout_s
        self.notify = list(notify)  # apprise URLs (slack://, msteams://, pagerduty://, mailto://, json://...)
        self._sent: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # subject -> key last sent
        self._lock = threading.Lock()
        self._load()
        # one queue and sender per webhook: a receiver that is down delays no other
        targets = [*self.webhooks, *self.notify]
        self._queues: dict[str, queue.Queue[Event | None]] = {url: queue.Queue() for url in targets}
        self._senders = [threading.Thread(target=self._deliver_forever, args=(url,), name="notify", daemon=True)
                         for url in targets]
        for sender in self._senders:
            sender.start()

    def emit(self, event: Event) -> None:
        """Record an event; notify it unless the same was already sent and has not cleared."""
        record = event.to_json()
        with self._lock:
            self.history.append(record)
            self._persist(record)
            repeat = self._sent.get(event.subject) == event.key
            self._sent[event.subject] = event.key
        log.info("event", type=event.type, kind=event.kind, name=event.name, message=event.message)
        if not repeat:
            for pending in self._queues.values():
                pending.put(event)

    def clear(self, event_type: str, kind: str | None, name: str | None) -> None:
        """The condition is gone: the next event of this kind is sent again."""
        with self._lock:
            self._sent.pop((event_type, kind, name), None)

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            return list(reversed(self.history))[:limit]

    def close(self, wait_s: float = 5) -> None:
        """Stop the senders (what is still queued or retrying after `wait_s` is dropped: they are daemons)."""
        for pending in self._queues.values():
            pending.put(None)
        deadline = time.monotonic() + wait_s
        for sender in self._senders:
            sender.join(timeout=max(0.0, deadline - time.monotonic()))

    # ------------------------------------------------------------------ history

    def _load(self) -> None:
        if not self.path or not self.path.exists():
            return
        for line in self.path.read_text(encoding="utf-8").splitlines()[-HISTORY:]:
            try:
                self.history.append(json.loads(line))
            except ValueError:
                continue  # a torn last line from a crash: skipped
        self._rewrite()

    def _persist(self, record: dict[str, Any]) -> None:
        if not self.path:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record, default=json_default) + "\n")
        if self.path.stat().st_size > 2 * HISTORY * 1024:  # bounded on disk too
            self._rewrite()

    def _rewrite(self) -> None:
        if self.path:
            lines = (json.dumps(r, default=json_default) + "\n" for r in self.history)
            self.path.write_text("".join(lines), encoding="utf-8")

    # ------------------------------------------------------------------ delivery

    def _deliver_forever(self, url: str) -> None:
        while (event := self._queues[url].get()) is not None:
            if url in self.notify:
                self._tell(url, event)
            else:
                self._deliver(url, json.dumps(event.to_json(), default=json_default).encode(), event)

    def _tell(self, url: str, event: Event) -> None:
        """A readable message to a chat or paging service, through apprise (it knows their URL schemes), sent by
        a helper process (agent/tell.py: the agent does not hold apprise's plugins)."""
        message = dumps({"url": url, "title": f"reconciler: {event.type}", "body": readable(event),
                              "type": _SEVERITY.get(event.type, "info")})
        delay = 1.0
        for attempt in range(1, self.retries + 1):
            try:
                done = subprocess.run([sys.executable, "-m", "reconciler.agent.tell.notify"], input=message, text=True,
                                      capture_output=True, timeout=max(30.0, self.timeout_s * 6))
                code = done.returncode
            except subprocess.TimeoutExpired:
                code = 1
            if code == 0:
                return
            if code == 2:
                log.error("notify.bad_url", url=_safe(url), reason="apprise does not know this URL scheme")
                return
            log.warning("notify.failed", url=_safe(url), type=event.type, attempt=attempt)
            time.sleep(delay)
            delay = min(delay * 2, 60)
        log.error("notify.gave_up", url=_safe(url), type=event.type, attempts=self.retries)

    def _deliver(self, url: str, body: bytes, event: Event) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "reconciler"}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(body, self.secret)
        delay = 1.0
        for attempt in range(1, self.retries + 1):
            try:
                request = urllib.request.Request(url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                    if answer.status < 300:
                        return
            except (urllib.error.URLError, OSError, ValueError) as exc:
                log.warning("notify.failed", url=_safe(url), type=event.type, attempt=attempt, error=str(exc))
            time.sleep(delay)
            delay = min(delay * 2, 60)
        log.error("notify.gave_up", url=_safe(url), type=event.type, attempts=self.retries)


_SEVERITY = {"sync.applied": "info", "operation.slow": "warning",
             "drift.detected": "warning", "drift.corrected": "success", "apply.failed": "failure",
             "health.degraded": "failure", "health.recovered": "success", "spec.invalid": "failure",
             "agent.stuck": "failure", "lease.lost": "warning", "window.blocked": "info"}


def readable(event: Event) -> str:
    """One event as a person reads it in a chat: what, where, which revision, and each field."""
    where = f"{event.kind}/{event.name}: " if event.kind else ""
    lines = [f"{where}{event.message}"]
    lines += [f"  {f['path']}: {dumps(f.get('before'))} -> {dumps(f.get('after'))}" for f in event.fields]
    if event.who:
        lines.append(f"changed by {event.who.get('principal')} ({event.who.get('call')}, {event.who.get('time', '?')})")
    if event.durationSeconds is not None:
        lines.append(f"AWS took {event.durationSeconds:.0f}s")
    if event.revision:
        lines.append(f"revision {event.revision}")
    return "\n".join(lines)


def _safe(url: str) -> str:
    """A webhook URL as logs show it: scheme, host and path, never a query that may carry a token."""
    return url.split("?", 1)[0]
