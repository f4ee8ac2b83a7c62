"""What the operator is told is true (issue 22), with the daemon following a git repository at AWS's time:

- creating the example stack sends `sync.applied` for each resource and no `drift.*` (a creation's later steps
  belong to the creation);
- a commit that changes a table's capacity sends `sync.applied` (that revision) and no `drift.*`;
- a console change of that capacity by another IAM user sends `drift.detected` naming that user (CloudTrail's
  LookupEvents, without --watch-events), the correction is `pending` with its progress in /status, and
  `drift.corrected` comes only once AWS has finished the UpdateTable, with how long it took;
- an UpdateTable AWS holds well past its p90 sends `operation.slow` once;
- a pending cache modification carries its progress in /status.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import ROOT, free_port, reconciler_command, wait_for
from tests.e2e.conftest import Repo, stop_gently

pytestmark = pytest.mark.slow(weight=4)

CREATE = 0.01    # AWS's time while the stack is made: a cache in 6 s
CORRECT = 0.05   # ...while drift is corrected: an UpdateTable of throughput in 3 s


class Agent:
    """`reconciler run` following the repository, as a subprocess."""

    def __init__(self, aws, repo: Repo, tmp_path: Path):
        self.port, self.log, self.state = free_port(), tmp_path / "agent.log", tmp_path / "state"
        env = {**aws.env, "REDIS_AUTH_TOKEN": "e2e-token-0123456789"}
        self.proc = subprocess.Popen(
            [*reconciler_command(), "run", "specs", "--git-url", f"file://{repo.bare}", "--git-branch", "main",
             "--interval", "2s", "--pending-interval", "0.5s", "--no-lease", "--http-port", str(self.port),
             "--http-host", "127.0.0.1", "--state-dir", str(self.state)],
            env=env, stdout=subprocess.DEVNULL, stderr=self.log.open("w"))

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status", timeout=5) as answer:
            return dict(json.load(answer))

    def resource(self, ref: str) -> dict[str, Any]:
        return next((r for r in self.status()["resources"] if f"{r['kind']}/{r['name']}" == ref), {})

    def sent(self) -> list[dict[str, Any]]:
        """Every event the agent sent (its history in the state directory: what /events and notifiers got)."""
        path = self.state / "events.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def stop(self) -> None:
        stop_gently(self.proc)


def in_sync(agent: Agent) -> bool:
    resources = agent.status().get("resources") or []
    return len(resources) == 5 and all(r["state"] == "in-sync" for r in resources)


def of(events: list[dict[str, Any]], type_: str, name: str | None = None) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == type_ and (name is None or e["name"] == name)]


def changed(event: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """path -> (before, after) of an event's fields."""
    return {f["path"]: (f["before"], f["after"]) for f in event["fields"]}


def console_user(aws, name: str) -> Any:
    """A DynamoDB client signed as another IAM user of the account (someone at the console)."""
    iam = aws.client("iam")
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return boto3.client("dynamodb", endpoint_url=aws.sandbox.endpoint, region_name="us-east-1",
                        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])


def set_capacity(ddb: Any, units: int) -> None:
    ddb.update_table(TableName="Products", ProvisionedThroughput={"ReadCapacityUnits": units,
                                                                  "WriteCapacityUnits": units})


def test_a_deploy_is_not_drift_and_a_correction_is_announced_when_aws_has_finished(aws, repo, tmp_path, agents):
    shutil.copytree(ROOT / "site", repo.work / "site")
    files = {f"specs/{p.name}": p.read_text() for p in (ROOT / "specs").glob("*.yaml")}
    repo.commit(files, "the example stack")
    aws.set_time(CREATE)
    agent = Agent(aws, repo, tmp_path)
    agents.append(agent)
    wait_for(lambda: in_sync(agent), timeout=120, what="the example stack created and in sync")

    made = agent.sent()
    assert not [e for e in made if e["type"].startswith("drift.")], "the creation was announced as drift"
    assert {(e["kind"], e["action"]) for e in of(made, "sync.applied")} == {
        ("Bucket", "create"), ("Distribution", "create"), ("Table", "create"), ("CacheCluster", "create")}
    assert all(e["format"] == "reconciler.event/v2" for e in made)

    # a commit that changes the capacity: a sync, not drift
    tables = files["specs/tables.yaml"].replace("capacity: {read: 5, write: 5}", "capacity: {read: 6, write: 6}")
    revision = repo.commit({"specs/tables.yaml": tables}, "Products: 6 capacity units")
    wait_for(lambda: [e for e in of(agent.sent(), "sync.applied", "Products") if e["revision"] == revision],
             timeout=60, what="sync.applied for the new revision")
    wait_for(lambda: in_sync(agent), timeout=60, what="in sync at the new revision")
    synced = next(e for e in of(agent.sent(), "sync.applied", "Products") if e["revision"] == revision)
    assert synced["action"] == "update"
    assert changed(synced) == {"spec.capacity": ({"read": 5, "write": 5}, {"read": 6, "write": 6})}
    assert not [e for e in agent.sent() if e["type"].startswith("drift.")], "a deploy was announced as drift"

    # someone else changes it at the console: drift, named, corrected once AWS has finished
    aws.set_time(CORRECT)
    alice = console_user(aws, "alice")
    set_capacity(alice, 9)
    wait_for(lambda: of(agent.sent(), "drift.detected", "Products"), timeout=30, what="drift.detected")
    progress = []

    def corrected() -> bool:
        products = agent.resource("Table/Products")
        if products.get("state") == "pending" and products.get("progress"):
            progress.append(products["progress"])
        return bool(of(agent.sent(), "drift.corrected", "Products"))

    wait_for(corrected, timeout=60, interval=0.2, what="drift.corrected")
    detected, fixed = of(agent.sent(), "drift.detected", "Products")[0], of(agent.sent(), "drift.corrected")[0]
    assert detected["who"]["principal"] == "arn:aws:iam::123456789012:user/alice"
    assert detected["who"]["call"] == "dynamodb:UpdateTable"
    assert changed(detected) == {"spec.capacity": ({"read": 9, "write": 9}, {"read": 6, "write": 6})}
    assert fixed["name"] == "Products" and fixed["who"]["principal"].endswith("user/alice")
    assert fixed["durationSeconds"] >= 60 * CORRECT * 0.9  # AWS's UpdateTable (60 s, scaled) had finished
    described = aws.client("dynamodb").describe_table(TableName="Products")["Table"]
    assert described["TableStatus"] == "ACTIVE" and described["ProvisionedThroughput"]["ReadCapacityUnits"] == 6
    assert progress, "the correction was never shown pending with its progress"
    assert progress[-1]["work"] == "dynamodb.throughput" and progress[-1]["expectedSeconds"] == 60 * CORRECT
    assert 0 <= progress[-1]["elapsedSeconds"] <= fixed["durationSeconds"] + 1

    # AWS takes far longer than usual: operation.slow, once
    before = len(agent.sent())
    set_capacity(alice, 8)
    aws.set_slower("dynamodb.throughput", 5)  # the agent's correction: 15 s where AWS usually takes 3 s
    slow_seen = []

    def slow_then_corrected() -> bool:
        products = agent.resource("Table/Products")
        if (products.get("progress") or {}).get("slow"):
            slow_seen.append(products["progress"])
        return len(of(agent.sent(), "drift.corrected", "Products")) >= 2

    wait_for(slow_then_corrected, timeout=90, interval=0.3, what="the slow correction finished")
    slow = of(agent.sent()[before:], "operation.slow", "Products")
    assert len(slow) == 1, slow  # once, however many looks found it slow
    assert slow[0]["progress"]["work"] == "dynamodb.throughput"
    assert slow[0]["progress"]["elapsedSeconds"] > 1.5 * slow[0]["progress"]["p90Seconds"]
    assert slow_seen and slow_seen[-1]["elapsedSeconds"] > 1.5 * slow_seen[-1]["p90Seconds"]
    assert of(agent.sent(), "drift.corrected", "Products")[-1]["durationSeconds"] >= 5 * 60 * CORRECT * 0.9

    # a cache modification (a commit: node type) shows its progress while AWS works on it
    aws.set_time(CREATE)
    cache = (repo.work / "specs" / "cache.yaml").read_text().replace("cache.t3.micro", "cache.t3.small")
    repo.commit({"specs/cache.yaml": cache}, "a bigger cache")

    def scaling() -> dict[str, Any] | None:
        cache = agent.resource("CacheCluster/app-cache")
        progress = cache.get("progress") or {}
        # AWS's time is read again every 2 s: the expected figure follows the factor just set
        return cache if progress.get("work") == "elasticache.scale" and progress.get("expectedSeconds") == \
            pytest.approx(1200 * CREATE) else None

    shown = wait_for(scaling, timeout=60, interval=0.2, what="the cache modification's progress")
    assert shown["state"] == "pending" and shown["progress"]["elapsedSeconds"] >= 0
    assert shown["progress"]["source"] == "typical (AWS)" and shown["progress"]["p90Seconds"] == 2 * 1200 * CREATE
    assert not [e for e in agent.sent() if e["type"] == "drift.detected" and e["name"] == "app-cache"]
    assert aws.errors() == {}, "the agent sent a write AWS refused"
