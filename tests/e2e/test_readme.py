"""The README's command blocks, run as written (a fresh HOME, no AWS account: the sandbox)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.slow


def blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def run_block(block: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run one block with bash as a user would paste it; background jobs are stopped at the end."""
    port = str(free_port())
    script = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + block.replace("4566", port)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RECONCILER_", "REDIS_"))}
    env.update(HOME=str(tmp_path), PATH=f"{Path(sys.executable).parent}:{env['PATH']}", NO_COLOR="1")
    return subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_the_readme_has_the_two_commands_and_a_tour():
    found = blocks()
    assert len(found) == 2
    assert "./scripts/run" in found[0] and "./scripts/test" in found[0]


def test_the_first_command_runs_as_written(tmp_path):
    [first, _] = blocks()
    lines = [line for line in first.splitlines() if "scripts/test" not in line]  # that one runs this test
    result = run_block("\n".join(lines) + "\n", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "No AWS account configured: running against the local sandbox." in result.stderr
    assert '"event": "cycle.done"' in result.stderr


def test_the_tour_runs_as_written(tmp_path):
    [_, tour] = blocks()
    result = run_block(tour, tmp_path)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "5 resource(s) in 3 file(s): valid." in out
    assert "Plan: 5 to add, 0 to adopt, 0 to change, 0 to replace, 0 to destroy." in out
    assert "All changes are applied and deployed." in out
    assert '~ spec.capacity = {"read": 9, "write": 5} -> {"read": 5, "write": 5}' in out
    assert "skipped" in out and "the sandbox has no Redis data plane" in out
    assert re.search(r"Distribution/website  \S+\.cloudfront\.net  HEALTHY", out)  # the site, through the edge
    assert "secret.throw_away" in result.stderr and "REDIS_AUTH_TOKEN" in result.stderr
    assert '{"requests": [{"service": ' in out
