"""A local AWS for trying the agent and for its tests: moto's server on loopback.

`Sandbox` is moto's ThreadedMotoServer with a thin WSGI layer in front that
- counts requests by (service, operation), served at GET /_sandbox/requests
  (DELETE resets the count), so tests prove "no write call" at the server;
- carries small fidelity fixes where moto departs from AWS in a way that matters to the
  agent (each documented in FIXES below and tested in tests/integration/test_sandbox.py).

Nothing here is used against a real account.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

SANDBOX_REGION = "us-east-1"
_READ_PREFIXES = ("Describe", "List", "Get", "BatchGet", "Query", "Scan", "Head")
_SCOPE = re.compile(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/aws4_request")

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def is_read(operation: str) -> bool:
    """True for operations that only read (Describe*, List*, Get*, GET/HEAD on REST APIs)."""
    return operation.startswith(_READ_PREFIXES) or operation.split(" ", 1)[0] in ("GET", "HEAD")


def _service_of(environ: Environ) -> str:
    match = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else "unknown"


def _operation_of(environ: Environ, body: bytes) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in query:
        return query["Action"][0]
    content_type = environ.get("CONTENT_TYPE", "")
    if body and "x-www-form-urlencoded" in content_type:
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return action[0]
    return f"{environ.get('REQUEST_METHOD', 'GET')} {environ.get('PATH_INFO', '/')}"


# --------------------------------------------------------------------------- fidelity fixes


def _one_gsi_change_per_update(service: str, operation: str, body: bytes) -> tuple[int, dict[str, Any]] | None:
    """DynamoDB allows one GSI Create or Delete per UpdateTable call; moto accepts several.

    AWS answers LimitExceededException ("Subscriber limit exceeded: Only 1 online index can
    be created or deleted simultaneously per table"). The agent must sequence them.
    """
    if service != "dynamodb" or operation != "UpdateTable":
        return None
    updates = json.loads(body or b"{}").get("GlobalSecondaryIndexUpdates") or []
    online = [u for u in updates if "Create" in u or "Delete" in u]
    if len(online) <= 1:
        return None
    return 400, {
        "__type": "com.amazonaws.dynamodb.v20120810#LimitExceededException",
        "message": "Subscriber limit exceeded: Only 1 online index can be created or deleted "
                   "simultaneously per table",
    }


FIXES: list[Callable[[str, str, bytes], tuple[int, dict[str, Any]] | None]] = [
    _one_gsi_change_per_update,
]


class _Middleware:
    """Counts requests and applies the fidelity fixes in front of moto's WSGI app."""

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/_sandbox/requests":
            return self._requests(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = b""
        if length:
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
        if path.startswith("/moto-api"):
            return self.app(environ, start_response)
        service, operation = _service_of(environ), _operation_of(environ, body)
        with self._lock:
            self.counts[(service, operation)] += 1
        for fix in FIXES:
            answer = fix(service, operation, body)
            if answer is not None:
                status, payload = answer
                return _json(start_response, status, payload, "application/x-amz-json-1.0")
        return self.app(environ, start_response)

    def _requests(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            if environ.get("REQUEST_METHOD") == "DELETE":
                self.counts.clear()
            rows = [{"service": s, "operation": o, "count": n, "read": is_read(o)}
                    for (s, o), n in sorted(self.counts.items())]
        return _json(start_response, 200, {"requests": rows})


def _json(start_response: StartResponse, status: int, payload: Any,
          content_type: str = "application/json") -> list[bytes]:
    data = json.dumps(payload).encode()
    reason = {200: "OK", 400: "Bad Request"}.get(status, "Error")
    start_response(f"{status} {reason}", [("Content-Type", content_type),
                                          ("Content-Length", str(len(data)))])
    return [data]


class Sandbox(ThreadedMotoServer):
    """moto's threaded server on 127.0.0.1 (port 0 = a free one), with the layer above."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1"):
        super().__init__(ip_address=host, port=port, verbose=False)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.middleware: _Middleware | None = None

    def _server_entry(self) -> None:
        self.middleware = _Middleware(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, self.middleware, threaded=True)
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def endpoint(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"

    def environment(self) -> dict[str, str]:
        """The environment variables that point boto3 (and the AWS CLI) at this sandbox."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "sandbox",
            "AWS_SECRET_ACCESS_KEY": "sandbox",
            "AWS_SESSION_TOKEN": "sandbox",
            "AWS_REGION": SANDBOX_REGION,
            "AWS_DEFAULT_REGION": SANDBOX_REGION,
        }


# Variables that could send a sandboxed process to a real account or elsewhere.
ISOLATE = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
           "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
           "AWS_CONTAINER_CREDENTIALS_FULL_URI")


def enter_sandbox(environ: dict[str, str]) -> Sandbox:
    """Start a sandbox and point this process's AWS configuration at it (only it)."""
    sandbox = Sandbox()
    sandbox.start()
    for key in list(environ):
        if key in ISOLATE or key.startswith("AWS_ENDPOINT_URL_"):
            del environ[key]
    environ.update(sandbox.environment())
    environ["AWS_CONFIG_FILE"] = environ["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
    return sandbox
