"""The agent's settings, as one typed object (the command line's flags, `reconciler run`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.engine.plan import DEFAULT_MAX_DESTROY


@dataclass(frozen=True)
class AgentConfig:
    """How the agent runs. Durations are seconds."""

    interval_s: float = 300.0           # how often a resource is checked (metadata.interval overrides it)
    pending_interval_s: float = 30.0    # while AWS works on a resource: look again this soon
    jitter: float = 0.1                 # a share of the interval added at random, per batch
    workers: int = 16                   # concurrent reads per reconcile
    max_destroy: int = DEFAULT_MAX_DESTROY
    backoff_cap_s: float | None = None  # a failing resource is retried after interval, doubling, up to this
    stuck_after: int = 3                # agent.stuck once nothing has succeeded for this many intervals
    notify_after: int = 1               # drift is reported once it has lasted this many reconciles
    http_token: str | None = None       # actions on the HTTP port need it; None: read-only
    http_read_token: str | None = None  # the page, /status and /events need it (or http_token); None: open
    watch_events: bool = False          # AWS's change events put the touched resources on the queue
    min_gap_s: float = 1.0              # a resource is reconciled at most this often, however many reasons
    environment: Any = None             # the Environment the agent was started for (its account was checked)
    http_tls: tuple[str, str] | None = None  # (certificate, key) files: the port speaks HTTPS
    http_trusted_proxies: tuple[str, ...] = ()  # addresses/CIDRs whose X-Forwarded-Proto: https is believed

    @property
    def pending_s(self) -> float:
        return min(self.pending_interval_s, self.interval_s)

    @property
    def backoff_max_s(self) -> float:
        return self.backoff_cap_s or self.interval_s * 16
