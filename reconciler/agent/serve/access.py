"""Who may use the agent's port: the tokens (compared in constant time), signed-in readers' sessions (in memory
only: a restart signs everyone out), failed attempts (logged once per client a minute, never the token), the
proxies whose X-Forwarded-Proto is believed, and what a person may ask for (Actions)."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

import structlog

log = structlog.get_logger()

SESSION_S = 12 * 3600     # a signed-in reader's session lasts this long
MAX_SESSIONS = 1000       # the oldest is dropped beyond this
FAILURE_LOG_S = 60.0      # a failed sign-in or token is logged once per client per this
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Access:
    """Who may do what on the port: the action token, the read token (None: reading is open), what a reader is
    warned of (the port is reachable from other machines without a read token), whether the listener speaks TLS,
    and the proxies whose `X-Forwarded-Proto` is believed."""

    action_token: str | None = None
    read_token: str | None = None
    exposure: str | None = None
    tls: bool = False
    trusted_proxies: tuple[Network, ...] = field(default=())

    def token_ok(self, given: str) -> bool:
        """`given` is the read or the action token (each compared in constant time)."""
        ok = False
        for token in (self.read_token, self.action_token):
            if token is not None:
                ok = hmac.compare_digest(given.encode(), token.encode()) or ok
        return ok

    def trusts(self, client: str) -> bool:
        """`client` is a proxy named by --http-trusted-proxy."""
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in network for network in self.trusted_proxies)


def parse_networks(values: tuple[str, ...] | list[str]) -> tuple[Network, ...]:
    """--http-trusted-proxy values (an address or a CIDR block each) as networks; ValueError names a bad one."""
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or CIDR block") from None
    return tuple(out)


class Sessions:
    """Signed-in readers: random session ids, kept in memory only (a restart signs everyone out)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}

    def new(self) -> str:
        session = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            self._expiry = {k: v for k, v in self._expiry.items() if v > now}
            while len(self._expiry) >= MAX_SESSIONS:
                self._expiry.pop(min(self._expiry, key=self._expiry.__getitem__))
            self._expiry[session] = now + SESSION_S
        return session

    def valid(self, session: str) -> bool:
        with self._lock:
            expiry = self._expiry.get(session)
        return expiry is not None and expiry > time.monotonic()

    def drop(self, session: str) -> None:
        with self._lock:
            self._expiry.pop(session, None)


class Failures:
    """Failed attempts, logged once per client per FAILURE_LOG_S (never the token)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def record(self, client: str, path: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._count[client] = self._count.get(client, 0) + 1
            if now - self._last.get(client, -FAILURE_LOG_S) < FAILURE_LOG_S:
                return
            self._last[client] = now
            attempts, self._count[client] = self._count[client], 0
        log.warning("http.auth_failed", client=client, path=path, attempts=attempts,
                    note="a request without a valid token; logged once per client per minute")


class Actions(Protocol):
    """What a person may ask for on the page (with the action token)."""

    def reconcile_now(self, ref: str | None = None) -> None: ...

    def set_paused(self, ref: str, paused: bool) -> None: ...
