"""A local AWS for trying the agent and for its tests: moto's server on loopback.

`Sandbox` is moto's ThreadedMotoServer with a thin WSGI layer in front that
- counts requests and their errors by (service, operation), served at GET /_sandbox/requests
  (DELETE resets the count), so tests prove "no write call" and "no write refused" at the server;
- keeps AWS's time (clock.py; GET/PUT /_sandbox/time with a factor and, for a test that needs AWS slow, how
  much slower one kind of work is; POST /_sandbox/time/finish) through the service modules (dynamodb.py,
  elasticache.py, cloudfront.py), which also carry the fidelity fixes where moto departs from AWS in a way
  that matters to the agent;
- serves CloudTrail's LookupEvents from its own record of the writes it answered (cloudtrail.py);
- can kill a client right after serving its k-th write (POST /_sandbox/kill), for crash tests;
- starts over as a fresh account (POST /_sandbox/reset), and says which AUTH tokens each cache accepts
  as SHA-256 digests (GET /_sandbox/auth-tokens), for tests against a sandbox in another process;
- refuses anonymous reads of objects as S3 does (s3.py), and serves each distribution's domain at its edge
  (edge.py; GET /_sandbox/edge says where, and the CA file its certificate verifies against).

Nothing here is used against a real account.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

from reconciler.aws.endpoints import SANDBOX_MARK
from reconciler.sandbox import rules
from reconciler.sandbox.clock import AwsTime, parse_aws_time, using
from reconciler.sandbox.cloudfront import patch_moto_cloudfront
from reconciler.sandbox.cloudtrail import Trail
from reconciler.sandbox.dynamodb import patch_moto_dynamodb
from reconciler.sandbox.elasticache import patch_moto_elasticache
from reconciler.sandbox.requests import (
    KEY_AND_REGION,
    Environ,
    StartResponse,
    anonymous_read,
    anonymous_refusal,
    error_code,
    is_read,
    operation_of,
    service_of,
)
from reconciler.sandbox.s3 import patch_moto_s3, tag_created_bucket

SANDBOX_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"  # moto's, for the sandbox's own credentials



class _Middleware:
    """Counts requests and their errors, keeps AWS's time, and can kill a client after a write."""

    def __init__(self, app: Callable[..., Iterable[bytes]], clock: AwsTime, seed: Callable[[], None] = lambda: None):
        self.app = app
        self.clock = clock
        self.seed = seed
        self.counts: Counter[tuple[str, str]] = Counter()
        self.errors: dict[tuple[str, str], Counter[str]] = {}
        self._kill: dict[str, int] | None = None  # {"writes": left, "pid": p, "signal": s}
        self.trail = Trail()  # CloudTrail's event history: the write calls served
        self._lock = threading.Lock()
        self._accounts: dict[str, str] = {}  # access key -> account (moto's mapping: a role's keys are its account's)
        self._furnished: set[tuple[str, str]] = set()  # (account, Region) that have their bastion
        self._furnishing = threading.Lock()
        self.edge: Any = None  # set by Sandbox.start
        # set once the account is seeded: a request (a reset, say) served meanwhile would reset moto's backends
        # under the seed (moto re-initialises a backend in place: 'EC2Backend' object has no attribute 'vpcs')
        self.ready = threading.Event()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        self.ready.wait(timeout=60)
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_sandbox/"):
            return self._control(path, environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = b""
        if length:
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
        if path.startswith("/moto-api"):
            if path.startswith("/moto-api/reset"):
                self.clock.reset()
                if self.edge is not None:
                    self.edge.reset()
                self.trail.clear()
                self.forget_accounts()
            return self.app(environ, start_response)
        anonymous = anonymous_read(environ)
        if anonymous is not None:  # counted apart: no signature says which service or account
            with self._lock:
                self.counts[("s3", "GetObject (anonymous)")] += 1
            refused = anonymous_refusal(environ, *anonymous)
            if refused is not None:
                return refused(start_response)
        service, operation = service_of(environ), operation_of(environ, body)
        with self._lock:
            self.counts[(service, operation)] += 1
        self._furnish(environ)
        if service == "cloudtrail" and operation == "LookupEvents":  # served here, with its own rules (cloudtrail.py)
            code, answer_json = self.trail.lookup(json.loads(body or b"{}"))
            return _json(start_response, code, answer_json)
        try:
            rules.check(service, operation, environ, body, *self._account_and_region(environ))
        except rules.Refused as refused:  # what AWS refuses, refused before moto sees it
            with self._lock:
                self.errors.setdefault((service, operation), Counter())[refused.code] += 1
            return rules.answer(refused, service, start_response)
        status: list[str] = []

        def capture(code: str, headers: Any, *rest: Any) -> Any:
            status.append(code)
            return start_response(code, headers, *rest)

        with using(self.clock):
            answer = b"".join(self.app(environ, capture))
        if status and int(status[0].split()[0]) >= 400:
            with self._lock:
                self.errors.setdefault((service, operation), Counter())[error_code(answer)] += 1
        if not is_read(operation):
            if status and int(status[0].split()[0]) < 400:
                self.trail.record(service, operation, environ, body)
                if service == "s3" and operation == "CreateBucket":
                    tag_created_bucket(unquote(environ.get("PATH_INFO", "")).lstrip("/").split("/", 1)[0],
                                       rules.s3_request_tags(body, "CreateBucketConfiguration"))
            self._maybe_kill()
        return [answer]

    def _account_and_region(self, environ: Environ) -> tuple[str, str]:
        """The account (moto's mapping of the signing key) and Region a request is for."""
        match = KEY_AND_REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
        if not match:
            return DEFAULT_ACCOUNT_ID, SANDBOX_REGION
        key, region = match.groups()
        return self._accounts.get(key, DEFAULT_ACCOUNT_ID), region

    def forget_accounts(self) -> None:
        with self._furnishing:
            self._accounts.clear()
            self._furnished.clear()

    def _furnish(self, environ: Environ) -> None:
        """Furnish the account and Region a request reaches, on its first request (furnish())."""
        match = KEY_AND_REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
        if not match:
            return
        key, region = match.groups()
        account = self._accounts.get(key)
        if account is None:
            from moto.iam.models import get_account_id_from

            account = self._accounts[key] = get_account_id_from(key)
        self.furnish(account, region)

    def furnish(self, account: str, region: str) -> None:
        """Give an account and Region what a real one already has and the agent does not own: the `bastion`
        security group in its default VPC (the host the agent runs on). Every account a request reaches gets it:
        an environment's agent assuming a role in another account finds its bastion there too."""
        from moto.ec2.exceptions import InvalidSecurityGroupDuplicateError
        from moto.ec2.models import ec2_backends

        with self._furnishing:
            if (account, region) in self._furnished:
                return
            try:
                ec2 = ec2_backends[account][region]
                vpc = ec2.get_default_vpc()
                if vpc is not None and ec2.get_security_group_by_name_or_id("bastion", vpc.id) is None:
                    ec2.create_security_group("bastion", "Sandbox fixture: the bastion host the agent runs on",
                                              vpc_id=vpc.id)
            except (KeyError, ValueError):  # a Region EC2 does not serve (CloudFront's, say): nothing to furnish
                pass
            except InvalidSecurityGroupDuplicateError:  # made meanwhile (a reset racing a request): it is there
                pass
            self._furnished.add((account, region))

    def _maybe_kill(self) -> None:
        """After the armed number of writes has been served, kill the client (crash tests)."""
        with self._lock:
            if self._kill is None:
                return
            self._kill["writes"] -= 1
            if self._kill["writes"] > 0:
                return
            kill, self._kill = self._kill, None
        with contextlib.suppress(ProcessLookupError):
            os.kill(kill["pid"], kill.get("signal", signal.SIGKILL))

    def _control(self, path: str, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        payload = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
        if path == "/_sandbox/requests":
            return _json(start_response, 200, {"requests": self._rows(clear=method == "DELETE")})
        if path == "/_sandbox/time":
            if method in ("PUT", "POST"):
                try:
                    if "time" in payload or "slower" not in payload:
                        self.clock.factor = parse_aws_time(payload.get("time"))
                    self.clock.slower = _slower(payload.get("slower", self.clock.slower))
                except ValueError as exc:
                    return _json(start_response, 400, {"error": str(exc)})
            return _json(start_response, 200, {"sandbox": SANDBOX_MARK, "factor": self.clock.factor,
                                               "transitions": self.clock.busy, "slower": self.clock.slower})
        if path == "/_sandbox/reset" and method == "POST":
            self._reset(payload.get("time", "instant"))
            return _json(start_response, 200, {"factor": self.clock.factor})
        if path == "/_sandbox/edge" and self.edge is not None:  # where the distributions' domains are served
            return _json(start_response, 200, self.edge.describe())
        if path == "/_sandbox/auth-tokens":
            return _json(start_response, 200, _auth_token_digests())
        if path == "/_sandbox/time/finish" and method == "POST":
            self.clock.finish_all()
            return _json(start_response, 200, {"sandbox": SANDBOX_MARK, "factor": self.clock.factor, "transitions": 0})
        if path == "/_sandbox/kill" and method == "POST":  # afterWrites <= 0 disarms
            with self._lock:
                writes = int(payload.get("afterWrites", 0))
                self._kill = {"writes": writes, "pid": int(payload["pid"]),
                              "signal": int(payload.get("signal", signal.SIGKILL))} if writes > 0 else None
            return _json(start_response, 200, {"armed": self._kill})
        return _json(start_response, 404, {"error": f"no such sandbox endpoint: {method} {path}"})

    def _reset(self, time: str) -> None:
        """A fresh account: moto's state and AWS's transitions gone, the seed made again, counts cleared."""
        from moto.moto_api._internal.models import moto_api_backend

        with self._lock:
            self._kill = None
        self.clock.reset()
        self.clock.factor = parse_aws_time(time)
        moto_api_backend.reset()
        if self.edge is not None:
            self.edge.reset()
        self.forget_accounts()
        self.trail.clear()
        self.seed()
        self._rows(clear=True)

    def _rows(self, clear: bool = False) -> list[dict[str, Any]]:
        if clear and self.edge is not None:
            self.edge.clear_counts()
        with self._lock:
            if clear:
                self.counts.clear()
                self.errors.clear()
            return [{"service": s, "operation": o, "count": n, "read": is_read(o),
                     "errors": dict(self.errors.get((s, o), {}))}
                    for (s, o), n in sorted(self.counts.items())]


def _slower(given: Any) -> dict[str, float]:
    """{"dynamodb.throughput": 6}: AWS takes that work six times its typical time from now on (a test's way to
    have AWS be slow, as it sometimes is)."""
    from reconciler.sandbox.clock import TYPICAL_DURATIONS

    if not isinstance(given, dict) or any(k not in TYPICAL_DURATIONS or float(v) <= 0 for k, v in given.items()):
        raise ValueError(f"slower: {{work: times}} with work one of {sorted(TYPICAL_DURATIONS)}, times > 0")
    return {str(k): float(v) for k, v in given.items()}


def _auth_token_digests() -> dict[str, list[str]]:
    """{replication group id: [SHA-256 hex of each AUTH token it accepts]} across the sandbox's accounts."""
    import hashlib

    from moto.elasticache.models import elasticache_backends

    from reconciler.sandbox.elasticache import valid_tokens

    out: dict[str, list[str]] = {}
    for account in list(elasticache_backends.values()):
        for backend in list(account.values()):
            for group_id, group in list(backend.replication_groups.items()):
                out[group_id] = [hashlib.sha256(t.encode()).hexdigest() for t in valid_tokens(group)]
    return out


def _json(start_response: StartResponse, status: int, payload: Any,
          content_type: str = "application/json") -> list[bytes]:
    data = json.dumps(payload).encode()
    reason = {200: "OK", 400: "Bad Request"}.get(status, "Error")
    start_response(f"{status} {reason}", [("Content-Type", content_type),
                                          ("Content-Length", str(len(data)))])
    return [data]


class Sandbox(ThreadedMotoServer):
    """moto's threaded server on 127.0.0.1 (port 0 = a free one), with the layer above."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", aws_time: float | str = 0.0):
        super().__init__(ip_address=host, port=port, verbose=False)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.clock = AwsTime(parse_aws_time(aws_time))
        self.middleware: _Middleware | None = None
        self.edge: Any = None  # edge.Edge: the distributions' domains, served

    def _server_entry(self) -> None:
        warnings.filterwarnings("ignore", message=r"Exception.*does not match an error shape", category=UserWarning)
        patch_moto_cloudfront()
        patch_moto_dynamodb()
        patch_moto_elasticache()
        patch_moto_s3()
        self.middleware = _Middleware(DomainDispatcherApplication(create_backend_app), self.clock, self.seed)
        self._server = make_server(self._ip_address, self._port, self.middleware, threaded=True)
        self._server_ready_event.set()
        self._server.serve_forever()

    def start(self) -> None:
        from reconciler.sandbox.edge import Edge

        super().start()
        self.edge = Edge(self.clock, host=self._ip_address).start()
        assert self.middleware is not None
        self.middleware.edge = self.edge
        self.seed()
        self.middleware.ready.set()

    def stop(self) -> None:
        super().stop()
        if self.edge is not None:
            self.edge.stop()
            self.edge = None

    def seed(self) -> None:
        """Create what a real account already has and the agent does not own (_Middleware.furnish) in the
        sandbox's own account and Region."""
        if self.middleware:
            self.middleware.forget_accounts()
            self.middleware.furnish(DEFAULT_ACCOUNT_ID, SANDBOX_REGION)
            self.middleware._rows(clear=True)

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


# The sandbox's AWS time when none is chosen: small but not zero, so a newcomer sees pending work as
# on AWS (a 10-minute cache creation takes 6 s).
DEFAULT_AWS_TIME = "0.01"


def enter_sandbox(environ: dict[str, str]) -> Sandbox:
    """Start a sandbox and point this process's AWS configuration at it (only it). Its time is
    RECONCILER_SANDBOX_TIME (instant | aws | factor), by default DEFAULT_AWS_TIME."""
    for key in list(environ):
        if key in ISOLATE or key.startswith("AWS_ENDPOINT_URL_"):
            del environ[key]
    sandbox = Sandbox(aws_time=environ.get("RECONCILER_SANDBOX_TIME") or DEFAULT_AWS_TIME)
    sandbox.start()
    environ.update(sandbox.environment())
    environ["AWS_CONFIG_FILE"] = environ["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
    return sandbox


