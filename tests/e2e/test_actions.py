"""Actions on the agent's HTTP port: none without --http-token-env; with it, only with the bearer token
and from no foreign origin: reconcile now, pause and resume a resource."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request

from tests.conftest import free_port, reconciler_command, wait_for
from tests.specs import table

TOKEN = "an-action-token-for-the-tests"
TABLE = table("Orders", tags={"team": "TEAM"})


def post(port: int, path: str, token: str | None = None, origin: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if origin:
        headers["Origin"] = origin
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=b"", headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def status(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as answer:
        return json.load(answer)


def daemon(aws, root, tmp_path, *extra: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([*reconciler_command(), "run", str(root), "--interval", "1h", "--http-port", str(port),
                             "--http-host", "127.0.0.1", "--no-lease", "--state-dir", str(tmp_path / "state"), *extra],
                            env={**aws.env, "ACTION_TOKEN": TOKEN}, stdout=subprocess.DEVNULL,
                            stderr=(tmp_path / "daemon.log").open("a"))
    wait_for(lambda: status(port)["lastCycle"], what="the first cycle")
    return proc, port


def test_the_port_is_read_only_without_a_token(aws, specs, tmp_path):
    proc, port = daemon(aws, specs("t.yaml", TABLE.replace("TEAM", "web")), tmp_path)
    try:
        assert post(port, "/actions/reconcile", TOKEN) == 403
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_actions_with_the_token_reconcile_now_and_pause_and_resume(aws, specs, tmp_path):
    root = specs("t.yaml", TABLE.replace("TEAM", "web"))
    proc, port = daemon(aws, root, tmp_path, "--http-token-env", "ACTION_TOKEN")
    try:
        cycles = len(status(port)["cycles"])
        assert post(port, "/actions/reconcile") == 401
        assert post(port, "/actions/reconcile", "wrong-token-0123456789") == 401
        assert post(port, "/actions/reconcile", TOKEN, origin="https://evil.example.com") == 403
        assert post(port, "/actions/reconcile", TOKEN) == 202
        wait_for(lambda: len(status(port)["cycles"]) > cycles, what="the cycle asked for")  # the interval is 1 h

        assert post(port, "/actions/pause?resource=Table/Orders", TOKEN) == 200
        specs("t.yaml", TABLE.replace("TEAM", "platform"))
        aws.reset_requests()
        assert post(port, "/actions/reconcile", TOKEN) == 202
        wait_for(lambda: status(port)["resources"][0]["state"] == "paused", what="paused")
        assert aws.writes() == []
        assert status(port)["resources"][0]["fields"] == [{"path": "spec.tags.team", "before": "web",
                                                           "after": "platform"}]
        assert post(port, "/actions/resume?resource=Table/Orders", TOKEN) == 200
        wait_for(lambda: status(port)["resources"][0]["state"] == "in-sync", what="resumed and corrected")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
