"""A fault-injecting HTTP proxy on loopback, in front of the sandbox (tests only).

A configurable share of requests is answered with a fault instead of being forwarded:
throttling in each service's own error format, 500/503, a response slower than the client's
read timeout, or a dropped connection. Everything else is forwarded unchanged.
"""

from __future__ import annotations

import http.client
import random
import re
import threading
import time
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_SCOPE = re.compile(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/aws4_request")

THROTTLE = {
    "dynamodb": (400, "application/x-amz-json-1.0",
                 b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}'),
    "s3": (503, "application/xml",
           b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"),
    "ec2": (503, "text/xml", b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit "
                             b"exceeded.</Message></Error></Errors><RequestID>x</RequestID></Response>"),
}
_QUERY = (400, "text/xml", b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate "
                           b"exceeded</Message></Error><RequestId>x</RequestId></ErrorResponse>")
FAULTS = ("throttle", "500", "503", "slow", "drop")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that gave up on a slow or dropped answer: expected here


class FaultProxy:
    """`FaultProxy(target, rate)`: start(), then point AWS_ENDPOINT_URL at .endpoint."""

    def __init__(self, target: str, rate: float, slow_s: float = 3.0, seed: int = 7,
                 faults: tuple[str, ...] = FAULTS):
        self.target, self.rate, self.slow_s, self.faults = target.rstrip("/"), rate, slow_s, faults
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()  # service -> throttles answered
        self.forwarded = 0
        self.server = _QuietServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FaultProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()

    def _pick(self) -> str | None:
        with self.lock:
            if self.random.random() >= self.rate:
                self.forwarded += 1
                return None
            fault = self.random.choice(self.faults)
            self.injected[fault] += 1
            return fault

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", ""):
                    body = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return body
                        body += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _any(self) -> None:
                body = self._body()
                fault = proxy._pick()
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault == "slow":
                    time.sleep(proxy.slow_s)
                if fault in ("throttle", "500", "503"):
                    match = _SCOPE.search(self.headers.get("Authorization", ""))
                    service = match.group(1) if match else ""
                    if fault == "throttle":
                        with proxy.lock:
                            proxy.throttled[service] += 1
                    status, kind, payload = THROTTLE.get(service, _QUERY) if fault == "throttle" else (
                        int(fault), "text/plain", b"internal error")
                    return self._reply(status, kind, payload)
                # http.client, not urllib: urllib adds a form Content-Type to bodies that have none
                target = urllib.parse.urlsplit(proxy.target)
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body or None,
                                     headers={k: v for k, v in self.headers.items()
                                              if k.lower() not in ("host", "transfer-encoding", "content-length",
                                                                   "expect")}
                                     | ({"Content-Length": str(len(body))} if body else {}))
                    answer = upstream.getresponse()
                    status, data, headers = answer.status, answer.read(), answer.headers
                finally:
                    upstream.close()
                self._reply(status, headers.get("Content-Type", "application/octet-stream"), data,
                            {k: v for k, v in headers.items() if k.lower().startswith(("x-amz", "etag"))})

            def _reply(self, status: int, kind: str, body: bytes, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

            def log_message(self, *_: object) -> None:
                pass

        return Handler
