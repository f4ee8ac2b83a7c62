"""The port never answers with an empty reply: a failure inside a handler is a 500 with a short message and one
logged event (the status store here is one whose snapshot fails, as a value JSON could not hold once made it)."""

from __future__ import annotations

import socket
from typing import Any

import structlog

from reconciler.agent.serve.http import serve
from reconciler.agent.serve.status import StatusStore
from reconciler.agent.tell.events import Events


class BrokenStore(StatusStore):
    def snapshot(self) -> dict[str, Any]:
        raise TypeError("Object of type Decimal is not JSON serializable")


class NoActions:
    def reconcile_now(self, ref: str | None = None) -> None: ...

    def set_paused(self, ref: str, paused: bool) -> None: ...


def get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_failing_handler_answers_500_and_logs_once():
    server = serve(BrokenStore(Events(None), 60), NoActions(), "127.0.0.1", 0)
    port = server.server_address[1]
    try:
        with structlog.testing.capture_logs() as logged:
            for path in ("/status", "/"):
                answer = get(port, path)
                assert answer.startswith(b"HTTP/1.0 500 "), answer[:80]
                assert b"internal error in the agent" in answer and b"Decimal" not in answer.split(b"\r\n\r\n")[1]
                assert b"X-Frame-Options: DENY" in answer
            healthy = get(port, "/healthz")  # the rest of the port goes on
        assert healthy.startswith(b"HTTP/1.0 200 ")
        errors = [e for e in logged if e["event"] == "http.error"]
        assert [e["path"] for e in errors] == ["/status", "/"]
        assert "Decimal is not JSON serializable" in errors[0]["error"]
    finally:
        server.shutdown()
        server.server_close()
