"""The agent keeps AWS's rules on its own, at AWS's time: it never leans on the sandbox to refuse for it.

- TTL: AWS takes one UpdateTimeToLive per table per hour, counted from the call. The agent records its own
  calls in the table's tags, so it never sends one AWS would refuse; a console user's change within the hour
  is the one thing it cannot know, so its first call after it may be refused: once, as AWS's hour (pending,
  next try after it), never as a failure.
- Point-in-time recovery on a new table waits until continuous backups are available.
- A resource whose dependency failed is `waiting`, names it, and sends nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, reconciler_command, wait_for
from tests.e2e.conftest import stop_gently, tags_of

pytestmark = pytest.mark.slow

FACTOR = 0.005  # AWS's hour of TTL: 18 s; a cache created in 3 s


class Agent:
    """`reconciler run` as a subprocess on a spec directory, with its /status and its JSON log."""

    def __init__(self, aws, specs: Path, tmp_path: Path, *extra: str):
        self.port, self.log = free_port(), tmp_path / "agent.log"
        env = {**aws.env, "REDIS_AUTH_TOKEN": "e2e-token-0123456789"}
        self.proc = subprocess.Popen(
            [*reconciler_command(), "run", str(specs), "--interval", "3s", "--pending-interval", "1s", "--no-lease",
             "--http-port", str(self.port), "--http-host", "127.0.0.1", "--state-dir", str(tmp_path / "state"),
             *extra], env=env, stdout=subprocess.DEVNULL, stderr=self.log.open("w"))

    def status(self) -> dict:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status", timeout=5) as answer:
            return json.load(answer)

    def resource(self, ref: str) -> dict:
        return next((r for r in self.status()["resources"] if f"{r['kind']}/{r['name']}" == ref), {})

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def stop(self) -> None:
        stop_gently(self.proc)


def example(tmp_path: Path, site: bool = True) -> Path:
    root = tmp_path / "example"
    shutil.copytree(ROOT / "specs", root / "specs")
    if site:
        shutil.copytree(ROOT / "site", root / "site")
    return root / "specs"


def in_sync(agent: Agent) -> bool:
    resources = agent.status().get("resources") or []
    return len(resources) == 5 and all(r["state"] == "in-sync" for r in resources)


def test_ttl_turned_off_by_hand_is_put_back_after_aws_hour_with_one_refusal_understood(aws, tmp_path, agents):
    ddb = aws.client("dynamodb")
    aws.set_time(FACTOR)
    agent = Agent(aws, example(tmp_path), tmp_path)
    agents.append(agent)
    wait_for(lambda: in_sync(agent), timeout=90, what="the example stack created and in sync")
    backups = ddb.describe_continuous_backups(TableName="Users")["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    assert ddb.describe_time_to_live(TableName="Users")["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED", "AttributeName": "ExpiresAt"}
    assert aws.errors() == {}, "the creation sent writes AWS refused"

    # the agent recorded its TTL call; a console user can change TTL once AWS's hour after it has passed
    at, _, asked = tags_of(aws, "Users")["reconciler:ttl"].partition(":")
    assert asked == "on:ExpiresAt"
    time.sleep(max(0.0, float(at) + 3600 * FACTOR + 1 - time.time()))
    ddb.update_time_to_live(TableName="Users", TimeToLiveSpecification={"AttributeName": "ExpiresAt",
                                                                        "Enabled": False})
    changed_by_hand = time.time()
    wait_for(lambda: "next at" in agent.resource("Table/Users").get("message", ""), timeout=30,
             what="the agent's TTL repair held by AWS's hour")
    held = agent.resource("Table/Users")
    assert held["state"] == "pending", held
    wait_for(lambda: in_sync(agent), timeout=60, what="TTL put back once AWS's hour had passed")
    put_back = time.time()
    agent.stop()

    assert ddb.describe_time_to_live(TableName="Users")["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"
    assert put_back - changed_by_hand >= 3600 * FACTOR * 0.9  # not before AWS's hour was over
    assert aws.errors() == {"dynamodb:UpdateTimeToLive:ValidationException": 1}  # that one, once; nothing else
    events = agent.events()
    assert not [e for e in events if e.get("level") in ("error", "critical")], "logged as a failure"
    assert not [e for e in events if e.get("event") == "apply.failed"]
    understood = [e for e in events if e.get("event") == "apply.not_yet" and e.get("name") == "Users"]
    assert understood and "within the last hour" in understood[0]["reason"]
    history = tmp_path / "state" / "events.jsonl"  # what /events shows and the notifiers were sent
    sent = [json.loads(line) for line in history.read_text().splitlines()] if history.exists() else []
    assert not [e for e in sent if e.get("type") == "apply.failed"], "notified as a failure"


def test_a_resource_whose_dependency_failed_waits_names_it_and_sends_nothing(aws, tmp_path, agents):
    aws.set_time(FACTOR)
    agent = Agent(aws, example(tmp_path, site=False), tmp_path)  # the site directory is missing
    agents.append(agent)
    wait_for(lambda: agent.resource("Distribution/website").get("state") == "waiting"
             and agent.resource("Table/Users").get("state") == "in-sync", timeout=90,
             what="the distribution waiting for its bucket")
    time.sleep(4)  # another cycle or two, with the bucket's backoff
    distribution, bucket = agent.resource("Distribution/website"), agent.resource("Bucket/example-site-bucket")
    assert bucket["state"] == "error" and "not a readable directory" in bucket["message"]
    assert distribution["state"] == "waiting", distribution
    assert distribution["message"].startswith("waiting for Bucket/example-site-bucket: ")
    assert "retrying in" not in distribution["message"] and "retryInSeconds" not in distribution
    assert "retryInSeconds" in bucket  # the failure says when it is tried again
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{agent.port}/", timeout=5) as answer:
        page = answer.read().decode()
    row = page.split('data-ref="Distribution/website"', 1)[1].split("</tr>", 1)[0]
    assert 'class="waiting"' in row and "waiting for Bucket/example-site-bucket" in row  # the page says it too
    logged = [e for e in agent.events() if e.get("name") == "website" and e.get("event") == "apply.waiting"]
    assert logged and logged[0]["waiting"].startswith("waiting for Bucket/example-site-bucket")
    assert not [e for e in agent.events() if e.get("name") == "website" and e.get("level") == "error"]
    writes = aws.writes()
    assert not [w for w in writes if w.startswith(("s3:", "cloudfront:"))], writes  # nothing for either
    assert aws.errors() == {}
