"""The agent's HTTP endpoints: the status page at /, /healthz, /metrics (Prometheus text), /status and
/events (JSON); with --http-token-env, POST /actions/reconcile, /actions/pause and /actions/resume behind
a bearer token. Without it nothing here changes anything.

It reads the status store and hands actions to `Actions` (the agent puts them on its work queue); it
imports nothing of the reconcile loop."""

from __future__ import annotations

import hmac
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..log import json_default
from .status import StatusStore


class Actions(Protocol):
    """What a person may ask for on the page (with the action token)."""

    def reconcile_now(self, ref: str | None = None) -> None: ...

    def set_paused(self, ref: str, paused: bool) -> None: ...


def serve(store: StatusStore, actions: Actions, host: str, port: int, token: str | None = None
          ) -> ThreadingHTTPServer:
    """Start the endpoints on a background thread; returns the server (call shutdown()). `token`: the action
    token (None: read-only)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                from .page import render

                body = render(store.snapshot(), store.events.recent(30)).encode()
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
            """Actions, only with --http-token-env: `Authorization: Bearer <token>` (compared in constant
            time) and no foreign Origin. A browser never adds that header by itself, so a page elsewhere
            cannot make a visitor's browser act (CSRF)."""
            path, _, query = self.path.partition("?")
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

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:  # requests are not logged
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
