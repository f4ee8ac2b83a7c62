"""Shared by the end-to-end tests: a spec repository (a bare git remote and a working clone) and the
daemon started as a subprocess against the sandbox, following it."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, reconciler_command, wait_for


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@dataclass
class Repo:
    bare: Path
    work: Path

    def commit(self, files: dict[str, str], message: str) -> str:
        for name, text in files.items():
            (self.work / name).parent.mkdir(parents=True, exist_ok=True)
            (self.work / name).write_text(text)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-qm", message)
        git(self.work, "push", "-q", "origin", "main")
        return git(self.work, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    bare, work = tmp_path / "stack.git", tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(tmp_path, "clone", "-q", str(bare), str(work))
    git(work, "config", "user.email", "ops@example.com")
    git(work, "config", "user.name", "Ops")
    git(work, "checkout", "-q", "-b", "main")
    return Repo(bare, work)


@dataclass
class Daemon:
    proc: subprocess.Popen[str]
    port: int
    log: Path

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def status(self) -> dict[str, Any]:
        return json.loads(self.get("/status")[1])

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


def stop_gently(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM, as a user stops the agent; SIGKILL after 30 s if it does not stop."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def agents() -> Iterator[list[Any]]:
    """Agents a test started (anything with `stop()`), stopped when it ends, whatever happened."""
    started: list[Any] = []
    yield started
    for agent in started:
        agent.stop()


@pytest.fixture
def start_daemon(aws, tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    daemons: list[Daemon] = []

    def start(repo: Repo, interval: str = "2s", *extra: str) -> Daemon:
        n = len(daemons)
        port, log = free_port(), tmp_path / f"daemon-{n}.log"
        proc = subprocess.Popen(
            [*reconciler_command(), "run", "specs", "--git-url", f"file://{repo.bare}", "--git-branch", "main",
             "--interval", interval, "--http-port", str(port), "--http-host", "127.0.0.1",
             "--state-dir", str(tmp_path / f"state-{n}"), *extra],
            env=aws.env, stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True)
        daemon = Daemon(proc, port, log)
        daemons.append(daemon)
        wait_for(lambda: daemon.get("/healthz")[0] == 200, what="the daemon's /healthz")
        return daemon

    yield start
    for d in daemons:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def tags_of(aws, table: str) -> dict[str, str]:
    ddb = aws.client("dynamodb")
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    return {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}


