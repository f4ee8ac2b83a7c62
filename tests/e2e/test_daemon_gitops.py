"""The daemon as a user runs it: `reconciler run` following a git branch, against the sandbox."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, reconciler_command, wait_for
from tests.e2e.conftest import Daemon, tags_of

TABLE = """\
apiVersion: reconciler/v1
kind: Table
metadata: {name: Orders}
spec:
  partitionKey: {name: OrderId, type: S}
  tags: {team: TEAM}
"""


def test_daemon_follows_git_corrects_drift_and_survives_a_broken_commit(aws, repo, start_daemon):
    first = repo.commit({"specs/tables.yaml": TABLE.replace("TEAM", "web")}, "Orders table")
    daemon = start_daemon(repo)
    ddb = aws.client("dynamodb")
    wait_for(lambda: "Orders" in ddb.list_tables()["TableNames"], what="the committed table")
    wait_for(lambda: daemon.status()["lastAppliedRevision"] == first, what="first revision applied")

    second = repo.commit({"specs/tables.yaml": TABLE.replace("TEAM", "platform")}, "Orders belongs to platform")
    wait_for(lambda: daemon.status()["lastAppliedRevision"] == second, what="second revision applied")
    assert tags_of(aws, "Orders")["team"] == "platform"
    status = daemon.status()
    assert status["lastAttemptedRevision"] == second
    assert status["commit"]["subject"] == "Orders belongs to platform" and status["commit"]["author"] == "Ops"
    page = daemon.get("/")[1]
    assert "“Orders belongs to platform” by Ops" in page  # the page says which commit, and whose
    assert status["resources"][0]["lastChange"]["action"] in ("update", "create")
    assert {"kind": "Table", "name": "Orders", "state": "in-sync"}.items() <= status["resources"][0].items()

    arn = ddb.describe_table(TableName="Orders")["Table"]["TableArn"]
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "hijacked"}])
    wait_for(lambda: tags_of(aws, "Orders")["team"] == "platform", timeout=20, what="drift corrected")

    broken_text = TABLE.replace("TEAM", "platform").replace("type: S", "type: Q")
    broken = repo.commit({"specs/tables.yaml": broken_text}, "oops")
    wait_for(lambda: (daemon.status()["specError"] or {}).get("revision") == broken, what="broken commit reported")
    status = daemon.status()
    [problem] = status["specError"]["problems"]
    assert problem["file"] == "specs/tables.yaml" and problem["line"] == 5
    assert problem["field"] == "spec.partitionKey.type"
    assert status["lastAttemptedRevision"] == broken and status["lastAppliedRevision"] == second
    assert daemon.proc.poll() is None and daemon.get("/healthz")[0] == 200
    # drift correction goes on at the last good revision; nothing is deleted
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "again"}])
    wait_for(lambda: tags_of(aws, "Orders")["team"] == "platform", timeout=20, what="drift corrected on last good")
    assert "Orders" in ddb.list_tables()["TableNames"]

    code, text = daemon.get("/metrics")
    assert code == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("reconciler_cycles", "reconciler_cycle_duration_seconds", "reconciler_changes_applied",
                 "reconciler_drift_detected", "reconciler_aws_api_calls", "reconciler_applied_revision_info",
                 "reconciler_spec_errors"):
        assert name in families, name
    applied = {s.labels["revision"] for s in families["reconciler_applied_revision_info"].samples}
    assert applied == {second}
    assert any(s.labels.get("operation") == "DescribeTable" and s.value > 0
               for s in families["reconciler_aws_api_calls"].samples)

    started = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=15) == 0
    assert time.monotonic() - started < 15
    events = daemon.events()  # every line is JSON
    assert {"agent.started", "cycle.done", "specs.invalid", "specs.fallback", "agent.stopped"} <= {
        e["event"] for e in events}
    assert all("revision" in e for e in events if e["event"] == "cycle.done")
    # a cycle that fell back says which revision it applied, and which one it attempted
    fell_back = [e for e in events if e["event"] == "cycle.done" and e.get("attempted_revision") == broken]
    assert fell_back and all(e["revision"] == second for e in fell_back)


def test_sighup_runs_a_cycle_now(aws, repo, start_daemon):
    repo.commit({"specs/tables.yaml": TABLE.replace("TEAM", "web")}, "Orders table")
    daemon = start_daemon(repo, interval="1h")
    wait_for(lambda: daemon.status()["lastCycle"], what="the first cycle")
    aws.client("dynamodb").delete_table(TableName="Orders")
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "Orders" in aws.client("dynamodb").list_tables()["TableNames"], timeout=20,
             what="the cycle SIGHUP triggered")
    daemon.proc.send_signal(signal.SIGINT)
    assert daemon.proc.wait(timeout=15) == 0


def test_once_exit_codes_and_require_healthy(aws, tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "cache.yaml").write_text("""\
apiVersion: reconciler/v1
kind: CacheCluster
metadata: {name: app-cache}
spec:
  allowFrom: [{securityGroupName: bastion}]
  authToken: {fromEnv: REDIS_AUTH_TOKEN}
  healthCheck: {timeoutSeconds: 1, tls: false, endpoint: "127.0.0.1:PORT"}
""".replace("PORT", str(free_port())))
    env = {**aws.env, "REDIS_AUTH_TOKEN": "some-token-12345"}
    lenient = subprocess.run([*reconciler_command(), "run", "--once", str(specs)], env=env, capture_output=True,
                             text=True, timeout=120)
    assert lenient.returncode == 0, lenient.stderr
    assert any(json.loads(line)["event"] == "health.failed" for line in lenient.stderr.splitlines())
    strict = subprocess.run([*reconciler_command(), "run", "--once", "--require-healthy", str(specs)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert strict.returncode == 1
    assert "some-token-12345" not in lenient.stderr + strict.stderr
    assert os.environ.get("REDIS_AUTH_TOKEN") != "some-token-12345"


APPLIED = ("apply.create", "apply.update", "apply.replace", "apply.delete", "apply.adopt")


def applied_by(daemon: Daemon) -> list[dict[str, Any]]:
    return [e for e in daemon.events() if e["event"] in APPLIED]


def lease_item(aws) -> dict[str, Any]:
    got = aws.client("dynamodb").get_item(TableName="reconciler-lease", Key={"LeaseName": {"S": "reconciler"}})
    return {k: next(iter(v.values())) for k, v in got["Item"].items()}


def test_two_agents_on_one_stack_one_applies_the_other_observes_and_takes_over(aws, repo, start_daemon):
    repo.commit({"specs/tables.yaml": TABLE.replace("TEAM", "web")}, "Orders table")
    lease = ("--lease-duration", "3s")
    first = start_daemon(repo, "1s", *lease)
    wait_for(lambda: first.status()["lease"]["role"] == "leader", what="the first agent to lead")
    second = start_daemon(repo, "1s", *lease)
    wait_for(lambda: second.status()["lastCycle"], what="the second agent's first cycle")
    ddb = aws.client("dynamodb")
    wait_for(lambda: "Orders" in ddb.list_tables()["TableNames"], what="the table")
    leader = first.status()["lease"]
    assert second.status()["lease"]["role"] == "follower"
    assert second.status()["lease"]["holder"] == leader["owner"] == lease_item(aws)["owner"]

    # Drift: both agents see it, only the leader corrects it.
    arn = ddb.describe_table(TableName="Orders")["Table"]["TableArn"]
    for round_ in range(3):
        ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": f"hijacked-{round_}"}])
        wait_for(lambda: tags_of(aws, "Orders")["team"] == "web", timeout=20, what="drift corrected")
    cycles = len([e for e in second.events() if e["event"] == "cycle.done"])
    wait_for(lambda: len([e for e in second.events() if e["event"] == "cycle.done"]) >= cycles + 2,
             what="the follower to observe two more cycles")
    assert len(applied_by(first)) >= 4  # the create and three corrections
    assert applied_by(second) == []
    assert second.status()["lastAppliedRevision"] is None  # it never wrote
    assert "lease.follower" in {e["event"] for e in second.events()}

    # The leader dies without releasing; the follower takes over once the lease runs out.
    first.proc.kill()
    first.proc.wait()
    wait_for(lambda: second.status()["lease"]["role"] == "leader", timeout=30, what="the follower to take over")
    assert lease_item(aws)["owner"] == second.status()["lease"]["owner"]
    assert "lease.takeover" in {e["event"] for e in second.events()}
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "after-handover"}])
    wait_for(lambda: tags_of(aws, "Orders")["team"] == "web", timeout=20, what="the new leader's correction")
    # its log line follows the look that confirms the write: on a busy machine, a moment after the tag is back
    wait_for(lambda: applied_by(second), timeout=20, what="the new leader's apply logged")
    assert [e["event"] for e in applied_by(second)] == ["apply.update"]

    # A clean stop releases the lease at once.
    second.proc.send_signal(signal.SIGTERM)
    assert second.proc.wait(timeout=15) == 0
    assert lease_item(aws)["released"] is True


def test_apply_by_hand_is_refused_while_an_agent_holds_the_lease(aws, repo, start_daemon, tmp_path):
    repo.commit({"specs/tables.yaml": TABLE.replace("TEAM", "web")}, "Orders table")
    daemon = start_daemon(repo, "1s", "--lease-duration", "3s")
    wait_for(lambda: daemon.status()["lease"]["role"] == "leader", what="the agent to lead")
    wait_for(lambda: "Orders" in aws.client("dynamodb").list_tables()["TableNames"], what="the table")
    by_hand = tmp_path / "by-hand"
    by_hand.mkdir()
    (by_hand / "tables.yaml").write_text(TABLE.replace("TEAM", "manual"))
    apply = [*reconciler_command(), "apply", "--auto-approve", str(by_hand)]

    refused = subprocess.run(apply, env=aws.env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"the agent {daemon.status()['lease']['owner']} holds the lease 'reconciler'" in refused.stderr
    holder = daemon.status()["lease"]["owner"]
    assert f"Waiting for the lease 'reconciler': {holder} holds it; if it does not renew it within 3s" in refused.stderr
    assert tags_of(aws, "Orders")["team"] == "web"  # nothing was written by hand

    daemon.proc.send_signal(signal.SIGTERM)  # a clean stop releases the lease: apply goes ahead at once
    assert daemon.proc.wait(timeout=15) == 0
    applied = subprocess.run(apply, env=aws.env, capture_output=True, text=True, timeout=120)
    assert applied.returncode == 0, applied.stderr
    assert tags_of(aws, "Orders")["team"] == "manual"
    assert lease_item(aws)["released"] is True  # and it let go of the lease afterwards


def test_an_agent_that_cannot_reach_aws_keeps_running_and_says_why(aws, tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "tables.yaml").write_text(TABLE.replace("TEAM", "web"))
    port = free_port()
    env = {**aws.env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_MAX_ATTEMPTS": "1",
           "RECONCILER_AWS_CONNECT_TIMEOUT": "1"}  # nothing listens there
    log = tmp_path / "daemon.log"
    proc = subprocess.Popen([*reconciler_command(), "run", str(specs), "--interval", "1h", "--http-port", str(port),
                             "--http-host", "127.0.0.1", "--lease-duration", "3s"],
                            env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    daemon = Daemon(proc, port, log)
    try:
        status = wait_for(lambda: daemon.status()["lastCycle"] and daemon.status(), what="a cycle to finish")
        assert status["lease"]["role"] == "follower"
        assert status["lease"]["error"].startswith("lease 'reconciler' in DynamoDB table 'reconciler-lease': ")
        assert "DescribeTable failed: cannot reach the AWS endpoint" in status["lease"]["error"]
        [resource] = status["resources"]
        assert resource["state"] == "error" and "DescribeTable" in resource["message"]
        assert daemon.get("/healthz")[0] == 200 and proc.poll() is None
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
    assert "Traceback" not in log.read_text()


def test_an_unreachable_git_remote_does_not_stop_drift_correction(aws, repo, start_daemon):
    """The remote goes away (moved): the agent keeps reconciling the commit it last fetched, and says
    why it could not fetch in the log and /status with git's own words; when it is back, that clears."""
    first = repo.commit({"specs/tables.yaml": TABLE.replace("TEAM", "web")}, "Orders table")
    daemon = start_daemon(repo)
    wait_for(lambda: daemon.status()["lastAppliedRevision"] == first, what="first revision applied")
    moved = repo.bare.with_name("moved.git")
    repo.bare.rename(moved)
    try:
        status = wait_for(lambda: daemon.status()["sourceError"] and daemon.status(), what="the fetch error")
        error = status["sourceError"]["error"]
        assert "does not appear to be a git repository" in error and "Could not read from remote" in error, error
        ddb = aws.client("dynamodb")
        arn = ddb.describe_table(TableName="Orders")["Table"]["TableArn"]
        ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "console"}])
        wait_for(lambda: tags_of(aws, "Orders")["team"] == "web", timeout=20, what="drift corrected while offline")
        assert daemon.status()["lastAttemptedRevision"] == first
    finally:
        moved.rename(repo.bare)
    wait_for(lambda: daemon.status()["sourceError"] is None, what="the error cleared")
    warnings = [e for e in daemon.events() if e["event"] == "git.fetch_failed"]
    assert warnings and "does not appear to be a git repository" in warnings[0]["error"]
