"""`run --watch-events`: AWS's change events reconcile the touched resource within seconds (issue 16).

The daemon runs as a subprocess against the sandbox. The sandbox (moto) records no CloudTrail events of
its own, so each test puts on the default bus the event CloudTrail would send (tests/fixtures/
cloudtrail_tag_table.json, with its AWS sources): what is tested is ours, from the queue on.
"""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.engine.iam import allowed_actions
from tests.conftest import free_port, reconciler_command, wait_for
from tests.iam_eval import TagBook, evaluate, read_calls

FIXTURE = json.loads((Path(__file__).parent.parent / "fixtures" / "cloudtrail_tag_table.json").read_text())
TABLES = "---\n".join(
    f"apiVersion: reconciler/v1\nkind: Table\nmetadata: {{name: {name}}}\n"
    f"spec:\n  partitionKey: {{name: Id, type: S}}\n  tags: {{team: web}}\n"
    for name in ("Users", "Orders", "Products"))


class Agent:
    def __init__(self, aws, root: Path, log: Path, *extra: str):
        self.port, self.calls = free_port(), log.parent / "calls.log"
        self.proc = subprocess.Popen(
            [*reconciler_command(), "run", str(root), "--interval", "1h", "--watch-events",
             "--http-port", str(self.port), "--http-host", "127.0.0.1", *extra],
            env={**aws.env, "RECONCILER_CALL_LOG": str(self.calls)}, stdout=subprocess.DEVNULL,
            stderr=log.open("a"), text=True)
        wait_for(lambda: self.status().get("events", {}).get("state") == "watching", what="the subscription")
        wait_for(lambda: self.status()["resources"] and all(r["state"] == "in-sync" for r in
                                                            self.status()["resources"]), what="the stack in sync")

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as answer:
            return answer.read().decode()

    def status(self) -> dict[str, Any]:
        return json.loads(self.get("/status"))

    def metric(self, name: str, **labels: str) -> float:
        total = 0.0
        for family in text_string_to_metric_families(self.get("/metrics")):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    total += sample.value
        return total

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


@pytest.fixture
def agents(aws, tmp_path):
    started: list[Agent] = []
    (tmp_path / "specs").mkdir()

    def start(specs: str = TABLES, *extra: str) -> Agent:
        (tmp_path / "specs" / "tables.yaml").write_text(specs)
        agent = Agent(aws, tmp_path / "specs", tmp_path / "agent.log", *extra)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        if agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait()


def event_for(aws, table: str, user_agent: str = "console.amazonaws.com") -> dict[str, Any]:
    event = copy.deepcopy(FIXTURE)
    event["detail"]["requestParameters"]["resourceArn"] = table_arn(aws, table)
    event["detail"]["userAgent"] = user_agent
    event["detail"]["eventTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return event


def put(aws, *events: dict[str, Any]) -> None:
    bus = aws.client("events")
    entries = [{"Source": e["source"], "DetailType": e["detail-type"], "Detail": json.dumps(e["detail"]),
                "EventBusName": "default"} for e in events]
    for start in range(0, len(entries), 10):  # PutEvents takes ten at a time
        assert bus.put_events(Entries=entries[start:start + 10])["FailedEntryCount"] == 0


def table_arn(aws, table: str) -> str:
    return aws.client("dynamodb").describe_table(TableName=table)["Table"]["TableArn"]


def team(aws, table: str) -> str:
    ddb = aws.client("dynamodb")
    return {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=table_arn(aws, table))["Tags"]}["team"]


def drift(aws, table: str) -> None:
    aws.client("dynamodb").tag_resource(ResourceArn=table_arn(aws, table), Tags=[{"Key": "team", "Value": "hotfix"}])


def reads(aws, operation: str) -> int:
    return sum(r["count"] for r in aws.requests() if r["operation"] == operation)


def last_reconcile(agent: Agent) -> dict[str, Any]:
    return agent.status()["events"].get("lastReconcile") or {}


def test_an_event_corrects_exactly_that_resource_and_own_bursts_and_garbage_are_handled(aws, agents, tmp_path):
    agent = agents()
    status = agent.status()["events"]
    assert status["trail"]["state"] == "none"  # the sandbox has no trail: said, and the agent goes on
    assert "events.no_trail" in (tmp_path / "agent.log").read_text()
    sqs = aws.client("sqs")
    [url] = status["queues"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["SqsManagedSseEnabled"] == "true"
    [statement] = json.loads(attributes["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": status["rules"][0]}}
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"]["managed-by"] == "reconciler"
    rule = aws.client("events").describe_rule(Name="reconciler-events")
    assert json.loads(rule["EventPattern"])["detail-type"] == ["AWS API Call via CloudTrail"]

    # a person re-tags Users in the console: the event leads to its correction, reading only Users
    drift(aws, "Users")
    aws.reset_requests()
    put(aws, event_for(aws, "Users"))
    wait_for(lambda: last_reconcile(agent).get("results") == {"Table/Users": "applied"}, timeout=15,
             what="the event's reconcile")
    assert reads(aws, "DescribeTable") == 2 and reads(aws, "GetResources") == 0  # the test's 1, the agent's 1
    assert team(aws, "Users") == "web"
    assert last_reconcile(agent)["apiCalls"] == 3  # DescribeTable, ListTagsOfResource, TagResource (polls apart)
    assert last_reconcile(agent)["changedBy"]["Table/Users"].startswith(
        "arn:aws:sts::123456789012:assumed-role/oncall/alice (dynamodb:TagResource, ")
    assert agent.metric("reconciler_event_correction_seconds_count") == 1

    # the agent's own write (its user agent, as CloudTrail records it): no reconcile
    aws.reset_requests()
    put(aws, event_for(aws, "Orders", user_agent="Boto3/1.35.0 md/Botocore#1.35.0 reconciler/0.1.0"))
    wait_for(lambda: agent.metric("reconciler_events_dropped_total", reason="own") == 1, what="own event dropped")
    assert reads(aws, "DescribeTable") == 1  # the test's own (for the ARN)

    # garbage and strangers: counted, dropped, the agent goes on
    sqs.send_message(QueueUrl=url, MessageBody="{not json")
    foreign = event_for(aws, "Users")
    foreign["detail"]["requestParameters"]["resourceArn"] = "arn:aws:dynamodb:us-east-1:123456789012:table/Other"
    put(aws, foreign)
    wait_for(lambda: agent.metric("reconciler_events_dropped_total", reason="malformed") == 1
             and agent.metric("reconciler_events_dropped_total", reason="foreign") == 1, what="dropped events")
    assert agent.proc.poll() is None and agent.get("/healthz")

    # a burst of 100 events for one resource: one reconcile
    before = agent.metric("reconciler_event_reconciles_total")
    drift(aws, "Orders")
    burst = [event_for(aws, "Orders") for _ in range(100)]
    aws.reset_requests()
    put(aws, *burst)
    wait_for(lambda: last_reconcile(agent).get("results") == {"Table/Orders": "applied"}, timeout=20,
             what="the burst's reconcile")
    time.sleep(3)  # any second reconcile would come now
    assert agent.metric("reconciler_event_reconciles_total") == before + 1
    assert reads(aws, "DescribeTable") == 1
    assert team(aws, "Orders") == "web"
    assert agent.metric("reconciler_events_received_total", source="dynamodb") == 103
    assert "AWS change events" in agent.get("/")  # the page shows the subscription
    # every call of the subscription, the polling and the reconciles is allowed by `iam-policy --watch-events`,
    # evaluated on the resource it touched with AWS's authorization data; the policy without it allows none
    document = json.loads(subprocess.run([*reconciler_command(), "iam-policy", "--watch-events"],
                                         capture_output=True, text=True, check=True).stdout)
    tags = TagBook(aws.client)
    tags.read()
    evaluation = evaluate(read_calls(agent.calls), document, tags)
    assert evaluation.denied == []
    assert {"sqs:ReceiveMessage", "events:PutRule", "cloudtrail:DescribeTrails"} <= {
        r.action for r in evaluation.requests}
    plain = json.loads(subprocess.run([*reconciler_command(), "iam-policy"], capture_output=True, text=True,
                                      check=True).stdout)
    assert "sqs:ReceiveMessage" not in allowed_actions(plain)


def test_events_sent_while_the_agent_is_stopped_wait_and_are_handled_on_start(aws, agents):
    s3, trail = aws.client("s3"), aws.client("cloudtrail")
    s3.create_bucket(Bucket="trail-logs")
    trail.create_trail(Name="management", S3BucketName="trail-logs", IsMultiRegionTrail=True)
    trail.start_logging(Name="management")
    agent = agents()
    assert agent.status()["events"]["trail"] == {"state": "logging", "trail": "management"}
    [url] = agent.status()["events"]["queues"]
    agent.stop()

    drift(aws, "Users")
    put(aws, event_for(aws, "Users"))
    sqs = aws.client("sqs")
    waiting = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert waiting["Attributes"]["ApproximateNumberOfMessages"] == "1"

    agent = agents()
    wait_for(lambda: agent.metric("reconciler_events_received_total") == 1, what="the waiting event handled")
    wait_for(lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
             ["ApproximateNumberOfMessages"] == "0", what="the message deleted after handling")
    assert team(aws, "Users") == "web"
    assert last_reconcile(agent)["resources"] == ["Table/Users"]


LEDGER = """\
apiVersion: reconciler/v1
kind: Table
metadata: {name: Ledger}
spec:
  partitionKey: {name: Id, type: S}
  billingMode: PROVISIONED
  capacity: {read: 5, write: 5}
"""


def test_an_event_for_a_table_aws_is_still_updating_is_carried_through_when_aws_is_done(aws, agents):
    """At AWS's time (throughput changes take a minute, here x0.05): the event's reconcile finds the table
    UPDATING, writes nothing AWS would refuse, and the agent looks again until it can correct it."""
    agent = agents(LEDGER, "--pending-interval", "1s")
    ddb = aws.client("dynamodb")
    aws.set_time(0.05)
    ddb.update_table(TableName="Ledger", ProvisionedThroughput={"ReadCapacityUnits": 20, "WriteCapacityUnits": 5})
    event = event_for(aws, "Ledger")
    event["detail"].update(eventName="UpdateTable", requestParameters={"tableName": "Ledger"})
    put(aws, event)
    wait_for(lambda: last_reconcile(agent).get("results") == {"Table/Ledger": "pending"}, timeout=15,
             what="the reconcile that finds the table busy")

    def capacity() -> int:
        table = ddb.describe_table(TableName="Ledger")["Table"]
        return table["TableStatus"] == "ACTIVE" and table["ProvisionedThroughput"]["ReadCapacityUnits"]

    wait_for(lambda: capacity() == 5, timeout=40, what="the capacity corrected once AWS was done")
    assert aws.errors() == {}  # not one write AWS refused
