"""The main job as a person sees it on a terminal (a real pseudo-terminal).

`reconciler run --once --sandbox specs/` is what `./scripts/run` runs on a machine with no AWS account; README's
"The two commands" shows its output, and this test holds README to it. The same command without a terminal (its
JSON log, ending on the `cycle.summary` event with the same counts) is asserted in
tests/integration/kinds/test_cache.py, which runs it anyway.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

from tests.conftest import ROOT, reconciler_command

ANSI = re.compile(r"\x1b\[[0-9;]*m")
RESOURCE_LINE = re.compile(r"^([-+~*!?]) (\w+/[\w.-]+): (.+)$")
COUNTS_LINE = re.compile(r"^(\d+) created, (\d+) updated, (\d+) in progress with AWS, (\d+) failed, (\d+) unchanged\.$")
PYTHON_REPR = re.compile(r"\b(None|True|False)\b|\{'|\['|'\]|'\}")
EXAMPLE = {"Bucket/example-site-bucket", "Table/Users", "Table/Products", "Distribution/website",
           "CacheCluster/app-cache"}
BUCKETS = ("created", "updated", "pending", "failed", "unchanged")


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RECONCILER_SANDBOX_TIME", "REDIS_AUTH_TOKEN", "NO_COLOR",
                                                           "RECONCILER_LOG_LEVEL", "RECONCILER_LOG_FORMAT")}
    return {**env, "RECONCILER_STATE_DIR": str(tmp_path / "state"), "TERM": "xterm", "COLUMNS": "120"}


def run_on_a_terminal(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 240) -> tuple[int, str]:
    """Run `command` with stdin, stdout and stderr on a new pseudo-terminal; what it printed (as the terminal got
    it) and its exit code."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdin=terminal, stdout=terminal, stderr=terminal,
                               close_fds=True)
    os.close(terminal)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1.0)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the other side is closed (the process ended)
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    return code, b"".join(chunks).decode()


def _screen(raw: str) -> list[str]:
    """The lines as a person reads them: colours and the terminal's carriage returns taken out."""
    return [ANSI.sub("", line).rstrip("\r") for line in raw.split("\n")]


def test_run_once_on_a_terminal_ends_with_a_report_in_words(example_specs, tmp_path):
    code, raw = run_on_a_terminal([*reconciler_command(), "run", "--once", "--sandbox", "specs/"],
                                  example_specs.parent, _environment(tmp_path))
    lines = _screen(raw)
    assert code == 0, raw[-3000:]
    assert "\x1b[" in raw  # a terminal gets colour (and this one was taken for one)
    assert all(len(line) <= 200 for line in lines), max(lines, key=len)
    assert not PYTHON_REPR.search(raw), PYTHON_REPR.search(raw)
    assert not any(line.startswith("{") or "cycle.done" in line or "apply.step" in line for line in lines), \
        "the info log stays off a terminal by default"

    resources = {m[2]: (m[1], m[3]) for m in map(RESOURCE_LINE.match, lines) if m}
    assert set(resources) == EXAMPLE, resources
    assert resources["Bucket/example-site-bucket"] == ("+", "created")
    for ref in EXAMPLE - {"Bucket/example-site-bucket"}:  # created, and AWS still takes its time (x 0.01)
        symbol, said = resources[ref]
        assert symbol == "*" and said.startswith("created; AWS is carrying out ") and "usually" in said, said
    assert "CreateReplicationGroup: creating -> available (usually ~6s, AWS's typical time)" in \
        resources["CacheCluster/app-cache"][1]

    [counts] = [m for m in map(COUNTS_LINE.match, lines) if m]
    assert tuple(map(int, counts.groups())) == (1, 0, 4, 0, 0)
    after = lines[lines.index(counts[0]) + 1]
    assert after.startswith("AWS is still working on 4 resource(s) (usually done within ~6s): run `reconciler run "
                            "--once` again then"), after

    shown = _readme_output()
    endpoint = re.compile(r"http://127\.0\.0\.1:\d+")
    printed = [endpoint.sub("http://127.0.0.1:PORT", line) for line in lines if line.strip()]
    expected = [endpoint.sub("http://127.0.0.1:PORT", line) for line in shown if line.strip()
                and not line.startswith("No AWS account configured")]  # scripts/run's own line, before this
    timestamp = re.compile(r"^\S+Z ")
    assert [timestamp.sub("", line) for line in printed] == [timestamp.sub("", line) for line in expected]


def _readme_output() -> list[str]:
    """The block README's "The two commands" shows as `./scripts/run`'s output on a terminal."""
    text = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- scripts/run on a terminal -->\n```text\n(.*?)```", text, re.S)
    assert found, "README shows what ./scripts/run prints on a terminal"
    return found[1].splitlines()
