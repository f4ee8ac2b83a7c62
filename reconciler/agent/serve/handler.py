"""One request to the agent's port, checked before it is used and answered once: reads (the page, /healthz,
/metrics, /status, /events), sign-in and sign-out, actions with the action token. A refusal is its own answer; any
other failure answers 500 and is logged once."""

from __future__ import annotations

import hmac
import os
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from reconciler.agent.serve.access import SESSION_S, Access, Actions, Failures, Sessions
from reconciler.agent.serve.page import render, render_signin
from reconciler.agent.serve.status import StatusStore
from reconciler.core.plainjson import dumps

log = structlog.get_logger()

COOKIE = "reconciler_session"
MAX_BODY = 4096           # the largest body a POST may carry (a sign-in form is a few dozen bytes)
REQUEST_TIMEOUT_S = 10.0  # a client that sends nothing for this long is dropped
READ_PATHS = ("/", "/index.html", "/status", "/events")
# On every answer: never shown inside another site's frame (clickjacking), never sniffed into another type.
SECURITY_HEADERS = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
                    "Cache-Control": "no-store"}


@dataclass(frozen=True)
class Context:
    """What every request is served from."""

    store: StatusStore
    actions: Actions
    access: Access
    sessions: Sessions
    failures: Failures


def handler_for(context: Context) -> type[RequestHandler]:
    """The handler class http.server builds per request, bound to `context`."""
    return type("BoundRequestHandler", (RequestHandler,), {"context": context})


class Refused(Exception):
    """A request the port will not serve, with the status and the words to answer."""

    def __init__(self, code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code, self.message, self.headers = code, message, headers or {}


def read_body(headers: Any, stream: Any, limit: int = MAX_BODY) -> bytes:
    """The body a POST declares, read exactly: Content-Length required (411), digits only (400), at most `limit`
    bytes (413); a chunked body is refused (411). Never reads more than was declared."""
    if headers.get("Transfer-Encoding"):
        raise Refused(411, "send the body with a Content-Length (chunked bodies are not taken)\n")
    lengths = headers.get_all("Content-Length") or []
    if not lengths:
        raise Refused(411, "Content-Length is required (curl: --data '')\n")
    if len(set(lengths)) != 1 or not lengths[0].strip().isdigit() or not lengths[0].strip().isascii():
        raise Refused(400, "Content-Length must be one number of bytes\n")
    length = int(lengths[0])
    if length > limit:
        raise Refused(413, f"the body may be at most {limit} bytes\n")
    body = stream.read(length) if length else b""
    if len(body) != length:
        raise Refused(400, "the body is shorter than its Content-Length\n")
    return bytes(body)


class RequestHandler(BaseHTTPRequestHandler):
    """One request to the agent's port; what it serves from is its class's `context` (handler_for)."""

    context: Context
    timeout = REQUEST_TIMEOUT_S  # socket timeout: a client that stalls mid-request is dropped

    def do_GET(self) -> None:
        self._answer(self._get)

    def do_POST(self) -> None:
        self._answer(self._post)

    def _answer(self, handle: Callable[[], None]) -> None:
        """Run a handler; a refusal is its own answer, any other failure a 500 and one log event."""
        try:
            handle()
        except Refused as refused:
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
        if path in READ_PATHS and not self._reader():
            if self._tried():
                self.context.failures.record(self.client_address[0], path)
            if path in ("/", "/index.html"):
                return self._send(401, signin_page().encode(), "text/html; charset=utf-8")
            raise Refused(401, "a read token is needed (Authorization: Bearer ...)\n",
                           {"WWW-Authenticate": 'Bearer realm="reconciler"'})
        store, access = self.context.store, self.context.access
        if path in ("/", "/index.html"):
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
            raise Refused(404, "not found: try /, /healthz, /metrics, /status or /events\n")

    def _post(self) -> None:
        """Sign-in and sign-out; actions, only with --http-token-env: `Authorization: Bearer <token>`
        (compared in constant time) and no foreign Origin. A browser never adds that header by itself, so a
        page elsewhere cannot make a visitor's browser act (CSRF)."""
        path, _, query = self.path.partition("?")
        self._same_origin()
        body = read_body(self.headers, self.rfile)
        if path in ("/signin", "/signout"):
            return self._sign(path, body)
        if self.context.access.action_token is None:
            raise Refused(403, "the agent's HTTP port is read-only: start it with --http-token-env VAR\n")
        given = self.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.context.access.action_token}".encode()):
            raise Refused(401, "a bearer token is needed (Authorization: Bearer ...)\n")
        ref = urllib.parse.parse_qs(query).get("resource", [""])[0]
        if path == "/actions/reconcile":
            if ref:
                self._declared(ref)
            self.context.actions.reconcile_now(ref or None)
            return self._send(202, f"{ref or 'every resource'} is reconciled now\n".encode(), "text/plain")
        if path in ("/actions/pause", "/actions/resume"):
            if not ref:
                raise Refused(400, "name the resource: ?resource=Kind/name\n")
            self._declared(ref)
            self.context.actions.set_paused(ref, path.endswith("pause"))
            return self._send(200, f"{ref} {'paused' if path.endswith('pause') else 'resumed'}\n".encode(),
                              "text/plain")
        raise Refused(404, "actions: /actions/reconcile, /actions/pause, /actions/resume\n")

    def _declared(self, ref: str) -> None:
        """Actions name a resource the specs declare (as the last reconcile read them), nothing else."""
        if self.context.store.resource(ref) is None:
            raise Refused(404, "no such resource in the specs (Kind/name, as /status lists them)\n")

    def _same_origin(self) -> None:
        """A browser's Origin must be this page's own; `null` (a sandboxed frame, a file, a redirect) is not."""
        origin = self.headers.get("Origin")
        if origin is None:
            return
        if origin.strip().lower() == "null" or urllib.parse.urlparse(origin).netloc != self.headers.get("Host", ""):
            raise Refused(403, "cross-origin requests are refused\n")

    def _reader(self) -> bool:
        """May this request read? Always without a read token; else a valid bearer token or session."""
        if self.context.access.read_token is None:
            return True
        given = self.headers.get("Authorization", "")
        if given.startswith("Bearer ") and self.context.access.token_ok(given[len("Bearer "):]):
            return True
        session = self._session()
        return session is not None and self.context.sessions.valid(session)

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
        if self.context.access.tls:
            return True
        forwarded = self.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return forwarded == "https" and self.context.access.trusts(self.client_address[0])

    def _sign(self, path: str, body: bytes) -> None:
        secure = self._over_tls()
        if path == "/signout":
            session = self._session()
            if session:
                self.context.sessions.drop(session)
            return self._send(303, b"", "text/plain", {"Location": "/", "Set-Cookie": cookie("", 0, secure)})
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        given = (form.get("token") or [""])[0]
        if self.context.access.read_token is None:
            return self._send(303, b"", "text/plain", {"Location": "/"})
        if not self.context.access.token_ok(given):
            self.context.failures.record(self.client_address[0], path)
            return self._send(401, signin_page("That token is not valid.").encode(), "text/html; charset=utf-8")
        return self._send(303, b"", "text/plain", {"Location": "/", "Set-Cookie": cookie(self.context.sessions.new(),
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


def cookie(value: str, max_age: int, secure: bool) -> str:
    return f"{COOKIE}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")


def signin_page(problem: str = "") -> str:
    """The sign-in form: the token goes in a POST body, never in a URL; nothing of the stack is shown."""
    return render_signin(problem)
