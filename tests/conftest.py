"""Shared fixtures: a real moto server over HTTP, the CLI as a subprocess, spec files."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from reconciler.sandbox import ISOLATE, Sandbox, is_read

ROOT = Path(__file__).resolve().parent.parent


def reconciler_command() -> list[str]:
    """The installed console script, as a user runs it (falls back to python -m)."""
    script = Path(sys.executable).parent / "reconciler"
    return [str(script)] if script.exists() else [sys.executable, "-m", "reconciler"]


@functools.cache
def sandbox_client(endpoint: str, service: str) -> Any:
    """A boto3 client of the sandbox at `endpoint`, made once per process (creating one costs a fifth of a
    second of CPU, and tests ask for them all the time; botocore clients are thread-safe)."""
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="sandbox",
                        aws_secret_access_key="sandbox")


@dataclass
class Aws:
    """The sandbox as a test sees it: its environment, boto3 clients, and request counts."""

    sandbox: Sandbox
    env: dict[str, str]

    def client(self, service: str) -> Any:
        return sandbox_client(self.sandbox.endpoint, service)

    def requests(self) -> list[dict[str, Any]]:
        """Requests the server received since the last reset, by service and operation."""
        with urllib.request.urlopen(self.sandbox.endpoint + "/_sandbox/requests") as answer:
            return json.load(answer)["requests"]

    def writes(self) -> list[str]:
        return [f"{r['service']}:{r['operation']}" for r in self.requests() if not is_read(r["operation"])]

    def reset_requests(self) -> None:
        request = urllib.request.Request(self.sandbox.endpoint + "/_sandbox/requests", method="DELETE")
        urllib.request.urlopen(request).close()

    def errors(self, writes_only: bool = True) -> dict[str, int]:
        """Error answers since the last reset, `service:Operation:Code` -> count (writes only by default)."""
        return {f"{r['service']}:{r['operation']}:{code}": n for r in self.requests()
                for code, n in r["errors"].items() if not (writes_only and r["read"])}

    def owned_table(self, name: str, **tags: str) -> None:
        """A table the agent owns (its ownership tags), keyed by Id, with these other tags: drift made ready."""
        self.client("dynamodb").create_table(
            TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "S"}],
            Tags=[{"Key": "managed-by", "Value": "reconciler"}, {"Key": "reconciler:name", "Value": name},
                  *({"Key": k, "Value": v} for k, v in tags.items())])

    def set_time(self, time: str | float) -> None:
        """The sandbox's AWS time: instant, aws, or a factor of AWS's typical durations."""
        self._post("/_sandbox/time", {"time": str(time)})

    def set_slower(self, work: str, times: float) -> None:
        """AWS takes `times` its typical time for `work` (a typical.DURATIONS name) from now on."""
        self._post("/_sandbox/time", {"slower": {work: times}})

    def finish_transitions(self) -> None:
        """Let AWS finish everything it is doing now (fast-forward)."""
        self._post("/_sandbox/time/finish", {})

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(self.sandbox.endpoint + path, data=json.dumps(body).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request) as answer:
            return json.load(answer)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first, the slowest (`slow(weight=N)`) first of all: spread over the workers (pytest-xdist),
    the longest ones then do not finish last, alone, after the rest is done."""
    def key(item: pytest.Item) -> tuple[int, int]:
        slow = item.get_closest_marker("slow")
        return (0, -int(slow.kwargs.get("weight", 1))) if slow else (1, 0)

    items.sort(key=key)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture
def aws(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Aws:
    """A clean sandbox for each test (moto state reset, request counts cleared, instant AWS time)."""
    sandbox.clock.factor = 0.0
    reset = urllib.request.Request(sandbox.endpoint + "/moto-api/reset", method="POST")
    urllib.request.urlopen(reset).close()
    sandbox.seed()
    env = {k: v for k, v in os.environ.items()
           if k not in ISOLATE and not k.startswith("AWS_ENDPOINT_URL")}
    env.update(sandbox.environment())
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
    env["RECONCILER_STATE_DIR"] = str(tmp_path_factory.mktemp("state"))  # the agent's journal, per test
    env["RECONCILER_MODELS_DIR"] = str(tmp_path_factory.getbasetemp() / "models")  # trimmed once, for every test
    handle = Aws(sandbox, env)
    handle.reset_requests()
    return handle


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def cli(aws: Aws, tmp_path: Path):
    """Run `reconciler ARGS` as a subprocess against the sandbox; returns a Result."""

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None,
            timeout: float = 120) -> Result:
        proc = subprocess.run([*reconciler_command(), *args], env=env or aws.env, cwd=tmp_path,
                              capture_output=True, text=True, input=input, timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def specs(tmp_path: Path):
    """Write spec files into tmp_path/specs: specs("a.yaml", text) -> the directory."""
    root = tmp_path / "specs"
    root.mkdir()

    def write(name: str, text: str) -> Path:
        # all at once, as an editor's save or a git checkout replaces a file: an agent reading the directory
        # meanwhile sees the old file or the new one, never a truncated one
        partial = root / f".{name}.partial"
        partial.write_text(textwrap.dedent(text).lstrip())
        partial.replace(root / name)
        return root

    write.root = root  # type: ignore[attr-defined]
    return write


@pytest.fixture
def example_specs(tmp_path: Path) -> Path:
    """A copy of the repository's example stack (specs/ and what it references)."""
    target = tmp_path / "example"
    shutil.copytree(ROOT / "specs", target / "specs")
    if (ROOT / "site").is_dir():
        shutil.copytree(ROOT / "site", target / "site")
    return target / "specs"


# --------------------------------------------------------------------------- real servers


def wait_for(condition: Callable[[], Any], timeout: float = 40, what: str = "condition", interval: float = 0.3) -> Any:
    """Poll `condition` until it returns something truthy (errors of a server still starting count
    as not yet); fail the test after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except (OSError, ValueError, KeyError, IndexError):  # a server still starting, a list not filled yet
            value = None
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what}")


def lookup_events(client: Any, timeout: float = 30, **args: Any) -> dict[str, Any]:
    """CloudTrail LookupEvents kept to AWS's rate (two a second per account and Region, shared with whatever else
    looks up meanwhile): a throttled call waits out the second and asks again, until `timeout`."""
    import time

    from botocore.exceptions import ClientError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return dict(client.lookup_events(**args))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ThrottlingException" or time.monotonic() > deadline:
                raise
            time.sleep(1.05)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    port: int
    password: str | None
    process: subprocess.Popen[bytes]
    ca_file: str | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def start_redis(workdir: Path, password: str | None = None, tls: dict[str, str] | None = None) -> RedisServer:
    """A real redis-server on a free loopback port (TLS-only when `tls` certificates are given)."""
    import time

    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed: run ./scripts/test, which installs it")
    port = free_port()
    args = [server, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    if tls:
        args += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", tls["cert"],
                 "--tls-key-file", tls["key"], "--tls-ca-cert-file", tls["ca"], "--tls-auth-clients", "no"]
    else:
        args += ["--port", str(port)]
    if password:
        args += ["--requirepass", password]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    import socket

    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return RedisServer(port, password, proc, tls["ca"] if tls else None)
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"redis-server exited with {proc.returncode}")
            time.sleep(0.05)
    proc.kill()
    pytest.fail("redis-server did not start within 10s")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis(tmp_path, password="s3cret-token-for-tests")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A test CA and a server certificate for localhost/127.0.0.1, made with openssl."""
    d = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "2", "-subj", "/CN=reconciler-test-ca")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "san.ext")
    return {"ca": str(d / "ca.crt"), "cert": str(d / "server.crt"), "key": str(d / "server.key")}


@pytest.fixture
def tls_redis(tmp_path: Path, tls_certs: dict[str, str]) -> Iterator[RedisServer]:
    server = start_redis(tmp_path, password="tls-token-for-tests", tls=tls_certs)
    yield server
    server.stop()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose accept queue is full: further connects get no answer (SYNs dropped), the
    way a security group that does not allow this host behaves."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    yield port
    for s in fillers:
        s.close()
    listener.close()
