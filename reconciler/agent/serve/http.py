"""The agent's HTTP endpoints: the status page at /, /healthz, /metrics (Prometheus text), /status and
/events (JSON); with --http-token-env, POST /actions/reconcile, /actions/pause and /actions/resume behind
a bearer token. Without it nothing here changes anything.

With --http-read-token-env, the page, /status and /events need a token too (the read token or the action
token): `Authorization: Bearer ...` from tools, or for a person a sign-in form that sets an HttpOnly,
SameSite=Strict session cookie (the token is never in a URL or a page). /healthz and /metrics stay open for
probes and Prometheus; they carry no values of resources.

What it is sent is checked before it is used: a POST states its body's length (Content-Length, digits, at most
MAX_BODY bytes; no chunked bodies), a browser's Origin must be this page's own (`null` is refused), actions name a
resource the specs declare. Every answer says not to frame it or guess its type; the session cookie is `Secure`
when the request came over TLS (the agent's own listener, --http-tls-cert, or a proxy it trusts saying
`X-Forwarded-Proto: https`). A failure inside a handler answers 500 and is logged once; the connection never
closes without an answer.

It reads the status store and hands actions to `Actions` (the agent puts them on its work queue); it
imports nothing of the reconcile loop."""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from reconciler.agent.serve.status import StatusStore
from reconciler.core.plainjson import dumps

log = structlog.get_logger()

COOKIE = "reconciler_session"
SESSION_S = 12 * 3600     # a signed-in reader's session lasts this long
MAX_SESSIONS = 1000       # the oldest is dropped beyond this
FAILURE_LOG_S = 60.0      # a failed sign-in or token is logged once per client per this
MAX_BODY = 4096           # the largest body a POST may carry (a sign-in form is a few dozen bytes)
REQUEST_TIMEOUT_S = 10.0  # a client that sends nothing for this long is dropped
_READ_PATHS = ("/", "/index.html", "/status", "/events")
# On every answer: never shown inside another site's frame (clickjacking), never sniffed into another type.
SECURITY_HEADERS = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
                    "Cache-Control": "no-store"}
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


class _Refused(Exception):
    """A request the port will not serve, with the status and the words to answer."""

    def __init__(self, code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code, self.message, self.headers = code, message, headers or {}


def read_body(headers: Any, stream: Any, limit: int = MAX_BODY) -> bytes:
    """The body a POST declares, read exactly: Content-Length required (411), digits only (400), at most `limit`
    bytes (413); a chunked body is refused (411). Never reads more than was declared."""
    if headers.get("Transfer-Encoding"):
        raise _Refused(411, "send the body with a Content-Length (chunked bodies are not taken)\n")
    lengths = headers.get_all("Content-Length") or []
    if not lengths:
        raise _Refused(411, "Content-Length is required (curl: --data '')\n")
    if len(set(lengths)) != 1 or not lengths[0].strip().isdigit() or not lengths[0].strip().isascii():
        raise _Refused(400, "Content-Length must be one number of bytes\n")
    length = int(lengths[0])
    if length > limit:
        raise _Refused(413, f"the body may be at most {limit} bytes\n")
    body = stream.read(length) if length else b""
    if len(body) != length:
        raise _Refused(400, "the body is shorter than its Content-Length\n")
    return bytes(body)


def serve(store: StatusStore, actions: Actions, host: str, port: int, access: Access | None = None,
          tls: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    """Start the endpoints on a background thread; returns the server (call shutdown()). `access`: the tokens
    (none: read-only, and reading open); `tls`: serve HTTPS with this context (tls_context())."""
    access = access or Access(tls=tls is not None)
    handler = _handler(store, actions, access, _Sessions(), _Failures())
    server = _Server((host, port), handler, tls)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context for the agent's own TLS listener (TLS 1.2 or newer); OSError/SSLError name the file."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


class _Server(ThreadingHTTPServer):
    """The threading server; with TLS, each connection's handshake runs on its own thread (a slow client holds
    nobody else up), and a failed handshake or an error no handler caught is one log line, never a traceback."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None):
        self.tls = tls
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is not None:
            request.settimeout(REQUEST_TIMEOUT_S)
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                log.info("http.tls_failed", client=client_address[0], error=str(exc))
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError | ssl.SSLError):
            return  # the client went away
        log.error("http.error", client=client_address[0] if client_address else None,
                  error=f"{type(exc).__name__}: {exc}", exc_info=bool(os.environ.get("RECONCILER_DEBUG")))


def _handler(store: StatusStore, actions: Actions, access: Access, sessions: _Sessions, failures: _Failures
             ) -> type[BaseHTTPRequestHandler]:
    token = access.action_token

    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT_S  # socket timeout: a client that stalls mid-request is dropped

        def do_GET(self) -> None:
            self._answer(self._get)

        def do_POST(self) -> None:
            self._answer(self._post)

        def _answer(self, handle: Callable[[], None]) -> None:
            """Run a handler; a refusal is its own answer, any other failure a 500 and one log event."""
            try:
                handle()
            except _Refused as refused:
                self._send(refused.code, refused.message.encode(), "text/plain; charset=utf-8", refused.headers)
            except (ConnectionError, TimeoutError):
                self.close_connection = True
            except Exception as exc:
                log.error("http.error", path=self.path.split("?", 1)[0], method=self.command,
                          error=f"{type(exc).__name__}: {exc}", exc_info=bool(os.environ.get("RECONCILER_DEBUG")))
                self.close_connection = True
                self._send(500, b"internal error in the agent; its log says what (http.error)\n",
                           "text/plain; charset=utf-8")

        def _get(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in _READ_PATHS and not self._reader():
                if self._tried():
                    failures.record(self.client_address[0], path)
                if path in ("/", "/index.html"):
                    return self._send(401, _signin_page().encode(), "text/html; charset=utf-8")
                raise _Refused(401, "a read token is needed (Authorization: Bearer ...)\n",
                               {"WWW-Authenticate": 'Bearer realm="reconciler"'})
            if path in ("/", "/index.html"):
                from reconciler.agent.serve.page import render

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
                self._send(200, dumps(store.snapshot(), indent=2).encode(), "application/json")
            elif path == "/events":
                self._send(200, dumps({"events": store.events.recent()}, indent=2).encode(), "application/json")
            else:
                raise _Refused(404, "not found: try /, /healthz, /metrics, /status or /events\n")

        def _post(self) -> None:
            """Sign-in and sign-out; actions, only with --http-token-env: `Authorization: Bearer <token>`
            (compared in constant time) and no foreign Origin. A browser never adds that header by itself, so a
            page elsewhere cannot make a visitor's browser act (CSRF)."""
            path, _, query = self.path.partition("?")
            self._same_origin()
            body = read_body(self.headers, self.rfile)
            if path in ("/signin", "/signout"):
                return self._sign(path, body)
            if token is None:
                raise _Refused(403, "the agent's HTTP port is read-only: start it with --http-token-env VAR\n")
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                raise _Refused(401, "a bearer token is needed (Authorization: Bearer ...)\n")
            ref = urllib.parse.parse_qs(query).get("resource", [""])[0]
            if path == "/actions/reconcile":
                if ref:
                    self._declared(ref)
                actions.reconcile_now(ref or None)
                return self._send(202, f"{ref or 'every resource'} is reconciled now\n".encode(), "text/plain")
            if path in ("/actions/pause", "/actions/resume"):
                if not ref:
                    raise _Refused(400, "name the resource: ?resource=Kind/name\n")
                self._declared(ref)
                actions.set_paused(ref, path.endswith("pause"))
                return self._send(200, f"{ref} {'paused' if path.endswith('pause') else 'resumed'}\n".encode(),
                                  "text/plain")
            raise _Refused(404, "actions: /actions/reconcile, /actions/pause, /actions/resume\n")

        def _declared(self, ref: str) -> None:
            """Actions name a resource the specs declare (as the last reconcile read them), nothing else."""
            if store.resource(ref) is None:
                raise _Refused(404, "no such resource in the specs (Kind/name, as /status lists them)\n")

        def _same_origin(self) -> None:
            """A browser's Origin must be this page's own; `null` (a sandboxed frame, a file, a redirect) is not."""
            origin = self.headers.get("Origin")
            if origin is None:
                return
            if origin.strip().lower() == "null" or urllib.parse.urlparse(origin).netloc != self.headers.get("Host", ""):
                raise _Refused(403, "cross-origin requests are refused\n")

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
            cookie: SimpleCookie = SimpleCookie()
            try:
                cookie.load(self.headers.get("Cookie", ""))
            except Exception:
                return None
            morsel = cookie.get(COOKIE)
            return morsel.value if morsel else None

        def _over_tls(self) -> bool:
            """The request reached us over TLS: our own listener, or a trusted proxy that says so."""
            if access.tls:
                return True
            forwarded = self.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
            return forwarded == "https" and access.trusts(self.client_address[0])

        def _sign(self, path: str, body: bytes) -> None:
            secure = self._over_tls()
            if path == "/signout":
                session = self._session()
                if session:
                    sessions.drop(session)
                return self._send(303, b"", "text/plain", {"Location": "/", "Set-Cookie": _cookie("", 0, secure)})
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
            given = (form.get("token") or [""])[0]
            if access.read_token is None:
                return self._send(303, b"", "text/plain", {"Location": "/"})
            if not access.token_ok(given):
                failures.record(self.client_address[0], path)
                return self._send(401, _signin_page("That token is not valid.").encode(), "text/html; charset=utf-8")
            return self._send(303, b"", "text/plain", {"Location": "/", "Set-Cookie": _cookie(sessions.new(),
                                                                                               SESSION_S, secure)})

        def _send(self, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def end_headers(self) -> None:
            """Every answer, errors the base class sends included, carries the security headers."""
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            super().end_headers()

        def log_message(self, *_: Any) -> None:  # requests are not logged
            pass

    return Handler


def _cookie(value: str, max_age: int, secure: bool) -> str:
    return f"{COOKIE}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")


def _signin_page(problem: str = "") -> str:
    """The sign-in form: the token goes in a POST body, never in a URL; nothing of the stack is shown."""
    from reconciler.agent.serve.page import render_signin

    return render_signin(problem)
