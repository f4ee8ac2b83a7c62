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
imports nothing of the reconcile loop. Here: the server and its TLS; who may do what: access.py; one request:
handler.py."""

from __future__ import annotations

import os
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

from reconciler.agent.serve.access import Access, Actions, Failures, Sessions
from reconciler.agent.serve.handler import REQUEST_TIMEOUT_S, Context, handler_for
from reconciler.agent.serve.status import StatusStore

log = structlog.get_logger()



def serve(store: StatusStore, actions: Actions, host: str, port: int, access: Access | None = None,
          tls: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    """Start the endpoints on a background thread; returns the server (call shutdown()). `access`: the tokens
    (none: read-only, and reading open); `tls`: serve HTTPS with this context (tls_context())."""
    access = access or Access(tls=tls is not None)
    handler = handler_for(Context(store, actions, access, Sessions(), Failures()))
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


