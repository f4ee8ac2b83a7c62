"""Every reason to look at a resource goes through one work queue: each resource at its own interval
(`metadata.interval`), and a burst of reasons (a person pressing "reconcile now" again and again) makes one
reconcile, not many. Counted at the sandbox and in the agent's own log."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from tests.conftest import free_port, reconciler_command, wait_for
from tests.e2e.test_actions import TOKEN, post, status

SPECS = """\
apiVersion: reconciler/v1
kind: Bucket
metadata: {name: hourly-site, interval: 1h}
spec: {tags: {team: web}}
---
apiVersion: reconciler/v1
kind: Table
metadata: {name: Often}
spec: {partitionKey: {name: Id, type: S}}
"""


def start(aws, root, tmp_path, *extra: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([*reconciler_command(), "run", str(root), "--http-port", str(port), "--http-host",
                             "127.0.0.1", "--no-lease", "--state-dir", str(tmp_path / "state"), *extra],
                            env={**aws.env, "ACTION_TOKEN": TOKEN}, stdout=subprocess.DEVNULL,
                            stderr=(tmp_path / "daemon.log").open("a"))
    return proc, port


def reconciles(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "daemon.log").read_text().splitlines()
            if '"cycle.done"' in line]


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def test_a_resource_with_its_own_interval_is_not_read_by_the_others_reconciles(aws, specs, tmp_path):
    root = specs("stack.yaml", SPECS)
    proc, port = start(aws, root, tmp_path, "--interval", "1s")
    try:
        wait_for(lambda: {r["state"] for r in status(port)["resources"]} == {"in-sync"}, what="both in sync")
        aws.reset_requests()
        before = len(reconciles(tmp_path))
        wait_for(lambda: len(reconciles(tmp_path)) >= before + 4, timeout=30, what="four more reconciles")
        shown = {f"{r['kind']}/{r['name']}": r for r in status(port)["resources"]}
    finally:
        stop(proc)
    requests = aws.requests()
    assert [r for r in requests if r["service"] == "s3"] == []  # the bucket was not read again
    assert sum(r["count"] for r in requests if r["operation"] == "DescribeTable") >= 4  # the table was, each time
    assert [r for r in requests if r["operation"] == "GetResources"] == []  # one resource: its own reads only
    assert shown["Bucket/hourly-site"]["nextCheckInSeconds"] > 3000
    assert shown["Table/Often"]["nextCheckInSeconds"] <= 2
    assert all(r["resources"] == 1 for r in reconciles(tmp_path)[before:])


def test_a_burst_of_reconcile_now_makes_one_reconcile_through_the_queue(aws, specs, tmp_path):
    root = specs("stack.yaml", SPECS)
    proc, port = start(aws, root, tmp_path, "--interval", "1h", "--http-token-env", "ACTION_TOKEN")
    try:
        wait_for(lambda: status(port)["cyclesDone"] >= 1, what="the first reconcile")
        time.sleep(1.5)  # past the per-resource gap of the first reconcile
        aws.reset_requests()
        before = len(reconciles(tmp_path))
        codes = [post(port, "/actions/reconcile?resource=Table/Often", TOKEN) for _ in range(10)]
        wait_for(lambda: len(reconciles(tmp_path)) > before, what="the reconcile asked for")
        time.sleep(2.5)  # any further reconcile would come now
        after = reconciles(tmp_path)[before:]
    finally:
        stop(proc)
    assert codes == [202] * 10
    assert len(after) <= 2 and all(r["resources"] == 1 for r in after)  # the burst: once (twice if it straddled one)
    assert [r for r in aws.requests() if r["service"] == "s3"] == []  # only the table asked for
    assert any(r.get("reasons") == ["now"] for r in after)
