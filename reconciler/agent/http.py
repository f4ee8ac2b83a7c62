"""The agent's HTTP endpoints: the status page at /, /healthz, /metrics (Prometheus text), /status and
/events (JSON). Nothing here changes anything."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from .daemon import Agent


def serve(agent: Agent, host: str, port: int) -> ThreadingHTTPServer:
    """Start the endpoints on a background thread; returns the server (call shutdown())."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                from .page import render

                body = render(agent.snapshot(), agent.events.recent(30)).encode()
                self._send(200, body, "text/html; charset=utf-8")
            elif path == "/healthz":
                ok = agent.alive()
                self._send(200 if ok else 503, b"ok\n" if ok else b"stale: no cycle finished recently\n",
                           "text/plain")
            elif path == "/metrics":
                self._send(200, generate_latest(agent.metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/status":
                body = json.dumps(agent.snapshot(), indent=2, default=str).encode()
                self._send(200, body, "application/json")
            elif path == "/events":
                body = json.dumps({"events": agent.events.recent()}, indent=2, default=str).encode()
                self._send(200, body, "application/json")
            else:
                self._send(404, b"not found: try /, /healthz, /metrics, /status or /events\n", "text/plain")

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
