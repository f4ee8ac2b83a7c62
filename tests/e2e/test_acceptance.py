"""`./scripts/acceptance`: the scenarios a user runs on a real account, run here against the sandbox, and its
refusal to touch an account that is not the one named."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def acceptance(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "scripts" / "acceptance"), *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_the_scenarios_pass_against_the_sandbox_and_leave_nothing(aws):
    done = acceptance("--sandbox", env=aws.env)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    phases = [line for line in done.stdout.splitlines() if line.startswith("== ")]
    assert [p.split(" (")[0] for p in phases] == [
        "== create the example stack", "== multi-step changes", "== a console user's drift, corrected",
        "== tombstone deletes"]
    assert "left behind: none" in done.stdout and "acceptance passed" in done.stdout
    removed = next(line for line in done.stdout.splitlines() if line.startswith("removing what the run leaves"))
    assert "table backup" in removed and "cache snapshot" in removed  # what deletes keep by design


def test_everything_is_removed_after_a_failure_too(aws):
    done = acceptance("--sandbox", "--fail-after", "create", env=aws.env)
    assert done.returncode == 1
    assert "a failure injected after the stack was created" in done.stderr
    removed = next(line for line in done.stdout.splitlines() if line.startswith("removing what the run leaves"))
    for kind in ("table", "bucket", "distribution", "cache"):
        assert f"{kind} " in removed
    assert "left behind: none" in done.stdout


def test_a_real_account_needs_its_own_id(aws):
    """Pointed at an "account" (the sandbox, which is 123456789012): without --account, or with another id, it
    refuses before it creates anything, having asked STS who the credentials are at most."""
    env = {k: v for k, v in aws.env.items() if k != "RECONCILER_SANDBOX"}
    refused = acceptance(env=env, timeout=120)
    assert refused.returncode == 2 and "without --account" in refused.stderr
    assert aws.requests() == []
    wrong = acceptance("--account", "111122223333", "--yes", env=env, timeout=120)
    assert wrong.returncode == 2
    assert "the credentials are of account 123456789012, not 111122223333; nothing was created" in wrong.stderr
    assert [(r["service"], r["operation"]) for r in aws.requests()] == [("sts", "GetCallerIdentity")]
