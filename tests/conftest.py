"""Shared fixtures: a real moto server over HTTP, the CLI as a subprocess, spec files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
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


@dataclass
class Aws:
    """The sandbox as a test sees it: its environment, boto3 clients, and request counts."""

    sandbox: Sandbox
    env: dict[str, str]

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.sandbox.endpoint, region_name="us-east-1",
                            aws_access_key_id="sandbox", aws_secret_access_key="sandbox")

    def requests(self) -> list[dict[str, Any]]:
        """Requests the server received since the last reset, by service and operation."""
        with urllib.request.urlopen(self.sandbox.endpoint + "/_sandbox/requests") as answer:
            return json.load(answer)["requests"]

    def writes(self) -> list[str]:
        return [f"{r['service']}:{r['operation']}" for r in self.requests() if not is_read(r["operation"])]

    def reset_requests(self) -> None:
        request = urllib.request.Request(self.sandbox.endpoint + "/_sandbox/requests", method="DELETE")
        urllib.request.urlopen(request).close()


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture
def aws(sandbox: Sandbox) -> Aws:
    """A clean sandbox for each test (moto state reset, request counts cleared)."""
    reset = urllib.request.Request(sandbox.endpoint + "/moto-api/reset", method="POST")
    urllib.request.urlopen(reset).close()
    sandbox.seed()
    env = {k: v for k, v in os.environ.items()
           if k not in ISOLATE and not k.startswith("AWS_ENDPOINT_URL")}
    env.update(sandbox.environment())
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
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
        (root / name).write_text(textwrap.dedent(text).lstrip())
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
