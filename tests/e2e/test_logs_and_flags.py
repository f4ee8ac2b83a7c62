"""What the agent and the CLI tell is true: one JSON stream, the revision actually applied, health
unknown when no check ran, the log level and colour asked for."""

from __future__ import annotations

import itertools
import json
import os
import pty
import signal
import subprocess
import time

from tests.conftest import free_port, reconciler_command, wait_for
from tests.specs import table

CACHE = """\
apiVersion: reconciler/v1
kind: CacheCluster
metadata: {name: slow-cache}
spec:
  allowFrom: [{securityGroupName: bastion}]
  transitEncryption: false
  healthCheck: {timeoutSeconds: 3, endpoint: "127.0.0.1:PORT"}
"""


def test_reconciles_longer_than_the_interval_never_overlap_and_the_stream_stays_json(aws, specs, tmp_path,
                                                                                     silent_port):
    """Reconciles longer than the interval (a health check that times out after 3 s, every 1 s): one worker takes
    from the queue, so the next starts only after the last ended; and every line of the stream is JSON."""
    from datetime import datetime

    root = specs("cache.yaml", CACHE.replace("PORT", str(silent_port)))
    log = tmp_path / "daemon.log"
    proc = subprocess.Popen([*reconciler_command(), "run", str(root), "--interval", "1s", "--http-port",
                             str(free_port()), "--http-host", "127.0.0.1", "--no-lease"],
                            env=aws.env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        wait_for(lambda: log.read_text().count('"cycle.done"') >= 3, timeout=60, what="three reconciles")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]  # every line is JSON
    done = [e for e in events if e["event"] == "cycle.done"]
    spans = [(datetime.fromisoformat(e["timestamp"]).timestamp() - e["duration_ms"] / 1000,
              datetime.fromisoformat(e["timestamp"]).timestamp()) for e in done]
    assert all(d["duration_ms"] >= 3000 for d in done)  # each longer than the interval
    assert all(later[0] >= earlier[1] - 0.05 for earlier, later in itertools.pairwise(spans))
    assert all(e["healthy"] is False for e in done)


def test_health_is_unknown_when_no_check_ran(aws, specs, cli):
    orders = table("Orders")
    root = specs("t.yaml", orders)
    ran = cli("run", "--once", "--no-lease", str(root))
    [done] = [json.loads(line) for line in ran.err.splitlines() if '"cycle.done"' in line]
    assert ran.code == 0 and done["ok"] is True and done["healthy"] is None  # no cache: nothing checked
    specs("t.yaml", orders.replace("type: S", "type: Q"))
    broken = cli("run", "--once", "--no-lease", str(root))
    [done] = [json.loads(line) for line in broken.err.splitlines() if '"cycle.done"' in line]
    assert broken.code == 1 and done["ok"] is False and done["healthy"] is None  # stopped early: unknown


def test_log_level_warning_is_honoured(aws, specs, cli):
    root = specs("t.yaml", table("Orders"))
    quiet = cli("run", "--once", "--no-lease", "--log-level", "warning", str(root))
    assert quiet.code == 0
    assert not [line for line in quiet.err.splitlines() if '"level": "info"' in line], quiet.err
    chatty = cli("run", "--once", "--no-lease", str(root))  # run's default: info
    assert '"event": "cycle.done"' in chatty.err


def run_on_a_terminal(args: list[str], env: dict[str, str], cwd) -> str:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=60)
    os.close(leader)
    return out.decode(errors="replace")


def test_no_color_and_NO_COLOR_are_honoured_on_a_terminal(aws, specs, tmp_path):
    root = specs("t.yaml", table("Orders"))
    plan = [*reconciler_command(), "plan", str(root)]
    assert "\x1b[" in run_on_a_terminal(plan, aws.env, tmp_path)  # colour on a terminal by default
    assert "\x1b[" not in run_on_a_terminal([*plan, "--no-color"], aws.env, tmp_path)
    no_color = run_on_a_terminal(plan, {**aws.env, "NO_COLOR": "1"}, tmp_path)
    assert "\x1b[" not in no_color and "Plan: 1 to add" in no_color


def test_observe_mode_drift_lists_its_fields_in_status_and_once_in_the_log(aws, specs, tmp_path):
    table = ("apiVersion: reconciler/v1\nkind: Table\nmetadata: {name: Orders, policy: observe}\n"
             "spec: {partitionKey: {name: Id, type: S}, tags: {team: web}}\n")
    root = specs("t.yaml", table)
    ddb = aws.client("dynamodb")
    aws.owned_table("Orders", team="console")
    port, log = free_port(), tmp_path / "daemon.log"
    proc = subprocess.Popen([*reconciler_command(), "run", str(root), "--interval", "1s", "--http-port", str(port),
                             "--http-host", "127.0.0.1", "--no-lease"],
                            env=aws.env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        import urllib.request

        def status() -> dict:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as answer:
                return json.load(answer)

        wait_for(lambda: len([e for e in log.read_text().splitlines() if '"cycle.done"' in e]) >= 3,
                 what="three cycles")
        [resource] = status()["resources"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert resource["state"] == "drifted" and resource["policy"] == "observe"
    assert resource["fields"] == [{"path": "spec.tags.team", "before": "console", "after": "web"}]
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    drift = [e for e in events if e["event"] == "drift.detected"]
    assert len(drift) == 1 and drift[0]["fields"] == resource["fields"]  # once, not every cycle
    arn = ddb.describe_table(TableName="Orders")["Table"]["TableArn"]
    tags = {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}
    assert tags["team"] == "console"  # observed, not changed


def test_apply_events_say_what_changed_with_secrets_masked(aws, specs, cli):
    orders = table("Orders", tags={"team": "web"})
    root = specs("t.yaml", orders)
    assert cli("run", "--once", "--no-lease", str(root)).code == 0
    specs("t.yaml", orders.replace("team: web", "team: platform"))
    ran = cli("run", "--once", "--no-lease", str(root))
    [update] = [json.loads(line) for line in ran.err.splitlines() if '"apply.update"' in line]
    assert update["fields"] == [{"path": "spec.tags.team", "before": "web", "after": "platform"}]
    cache = ("apiVersion: reconciler/v1\nkind: CacheCluster\nmetadata: {name: c1}\n"
             "spec: {allowFrom: [{securityGroupName: bastion}], authToken: {fromEnv: REDIS_AUTH_TOKEN}}\n")
    root = specs("t.yaml", cache)
    first = cli("run", "--once", "--no-lease", str(root), env={**aws.env, "REDIS_AUTH_TOKEN": "first-0123456789"})
    assert first.code == 0
    rotated = cli("run", "--once", "--no-lease", str(root), env={**aws.env, "REDIS_AUTH_TOKEN": "second-0123456789"})
    [event] = [json.loads(line) for line in rotated.err.splitlines() if '"apply.update' in line]
    assert {"path": "spec.authToken", "before": "(sensitive)", "after": "(sensitive)", "sensitive": True} in event[
        "fields"]
    assert "first-0123456789" not in rotated.err and "second-0123456789" not in rotated.err
