"""The agent's HTTP endpoints: the status page at /, /healthz, /metrics (Prometheus text), /status and
/events (JSON); with --http-token-env, POST /actions/reconcile, /actions/pause and /actions/resume behind
a bearer token. Without it nothing here changes anything.

With --http-read-token-env, the page, /status and /events need a token too (the read token or the action
token): `Authorization: Bearer ...` from tools, or for a person a sign-in form that sets an HttpOnly,
SameSite=Strict session cookie (the token is never in a URL or a page). /healthz and /metrics stay open for
probes and Prometheus; they carry no values of resources.

It reads the status store and hands actions to `Actions` (the agent puts them on its work queue); it
imports nothing of the reconcile loop."""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..log import json_default
from .status import StatusStore

log = structlog.get_logger()

COOKIE = "reconciler_session"
SESSION_S = 12 * 3600     # a signed-in reader's session lasts this long
MAX_SESSIONS = 1000       # the oldest is dropped beyond this
FAILURE_LOG_S = 60.0      # a failed sign-in or token is logged once per client per this
_READ_PATHS = ("/", "/index.html", "/status", "/events")


@dataclass(frozen=True)
class Access:
    """Who may do what on the port: the action token, the read token (None: reading is open), and what a
    reader is warned of (the port is reachable from other machines without a read token)."""

    action_token: str | None = None
    read_token: str | None = None
    exposure: str | None = None

    def token_ok(self, given: str) -> bool:
        """`given` is the read or the action token (each compared in constant time)."""
        ok = False
        for token in (self.read_token, self.action_token):
            if token is not None:
                ok = hmac.compare_digest(given.encode(), token.encode()) or ok
        return ok


class _Sessions:
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


class _Failures:
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


def serve(store: StatusStore, actions: Actions, host: str, port: int, access: Access | None = None
          ) -> ThreadingHTTPServer:
    """Start the endpoints on a background thread; returns the server (call shutdown()). `access`: the tokens
    (none: read-only, and reading open)."""
    access = access or Access()
    token = access.action_token
    sessions, failures = _Sessions(), _Failures()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in _READ_PATHS and not self._reader():
                if self._tried():
                    failures.record(self.client_address[0], path)
                if path in ("/", "/index.html"):
                    return self._send(401, _signin_page().encode(), "text/html; charset=utf-8")
                return self._send(401, b"a read token is needed (Authorization: Bearer ...)\n", "text/plain",
                                  {"WWW-Authenticate": 'Bearer realm="reconciler"'})
            if path in ("/", "/index.html"):
                from .page import render

                body = render(store.snapshot(), store.events.recent(30), access.exposure,
                              signed_in=access.read_token is not None).encode()
                self._send(200, body, "text/html; charset=utf-8")
            elif path == "/healthz":
                ok = store.alive()
                self._send(200 if ok else 503, b"ok\n" if ok else b"stale: no cycle finished recently\n",
                           "text/plain")
            elif path == "/metrics":
                self._send(200, generate_latest(store.metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/status":
                body = json.dumps(store.snapshot(), indent=2, default=json_default).encode()
                self._send(200, body, "application/json")
            elif path == "/events":
                body = json.dumps({"events": store.events.recent()}, indent=2, default=json_default).encode()
                self._send(200, body, "application/json")
            else:
                self._send(404, b"not found: try /, /healthz, /metrics, /status or /events\n", "text/plain")

        def do_POST(self) -> None:
            """Sign-in and sign-out; actions, only with --http-token-env: `Authorization: Bearer <token>`
            (compared in constant time) and no foreign Origin. A browser never adds that header by itself, so a
            page elsewhere cannot make a visitor's browser act (CSRF)."""
            path, _, query = self.path.partition("?")
            if path in ("/signin", "/signout"):
                return self._sign(path)
            if token is None:
                return self._send(403, b"the agent's HTTP port is read-only: start it with --http-token-env VAR\n",
                                  "text/plain")
            given = self.headers.get("Authorization", "")
            expected = f"Bearer {token}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return self._send(401, b"a bearer token is needed (Authorization: Bearer ...)\n", "text/plain")
            origin = self.headers.get("Origin")
            if origin and urllib.parse.urlparse(origin).netloc != self.headers.get("Host", ""):
                return self._send(403, b"cross-origin requests are refused\n", "text/plain")
            ref = urllib.parse.parse_qs(query).get("resource", [""])[0]
            if path == "/actions/reconcile":
                actions.reconcile_now(ref if "/" in ref else None)
                return self._send(202, f"{ref if '/' in ref else 'every resource'} is reconciled now\n".encode(),
                                  "text/plain")
            if path in ("/actions/pause", "/actions/resume"):
                if "/" not in ref:
                    return self._send(400, b"name the resource: ?resource=Kind/name\n", "text/plain")
                actions.set_paused(ref, path.endswith("pause"))
                return self._send(200, f"{ref} {'paused' if path.endswith('pause') else 'resumed'}\n".encode(),
                                  "text/plain")
            return self._send(404, b"actions: /actions/reconcile, /actions/pause, /actions/resume\n", "text/plain")

        def _reader(self) -> bool:
            """May this request read? Always without a read token; else a valid bearer token or session."""
            if access.read_token is None:
                return True
            given = self.headers.get("Authorization", "")
            if given.startswith("Bearer ") and access.token_ok(given[len("Bearer "):]):
                return True
            session = self._session()
            return session is not None and sessions.valid(session)

        def _tried(self) -> bool:
            return bool(self.headers.get("Authorization") or self._session())

        def _session(self) -> str | None:
            cookie = SimpleCookie()
            try:
                cookie.load(self.headers.get("Cookie", ""))
            except Exception:
                return None
            morsel = cookie.get(COOKIE)
            return morsel.value if morsel else None

        def _sign(self, path: str) -> None:
            origin = self.headers.get("Origin")
            if origin and origin != "null" and urllib.parse.urlparse(origin).netloc != self.headers.get("Host", ""):
                return self._send(403, b"cross-origin requests are refused\n", "text/plain")
            if path == "/signout":
                session = self._session()
                if session:
                    sessions.drop(session)
                return self._send(303, b"", "text/plain", {"Location": "/", "Set-Cookie": _cookie("", 0)})
            length = min(int(self.headers.get("Content-Length") or 0), 4096)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
            given = (form.get("token") or [""])[0]
            if access.read_token is None:
                return self._send(303, b"", "text/plain", {"Location": "/"})
            if not access.token_ok(given):
                failures.record(self.client_address[0], path)
                return self._send(401, _signin_page("That token is not valid.").encode(), "text/html; charset=utf-8")
            return self._send(303, b"", "text/plain", {"Location": "/", "Set-Cookie": _cookie(sessions.new(),
                                                                                               SESSION_S)})

        def _send(self, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:  # requests are not logged
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server


def _cookie(value: str, max_age: int) -> str:
    return f"{COOKIE}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict"


def _signin_page(problem: str = "") -> str:
    """The sign-in form: the token goes in a POST body, never in a URL; nothing of the stack is shown."""
    from .page import render_signin

    return render_signin(problem)
