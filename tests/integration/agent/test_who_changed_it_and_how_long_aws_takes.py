"""The parts of issue 22 that talk to the sandbox: CloudTrail's event history (ours: moto has no LookupEvents)
kept to AWS's rules, the plan's expected durations, and the IAM policy's read of it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.config import Config

from reconciler.engine.iam import allowed_actions, policy
from tests.conftest import lookup_events


def lookups(aws, **extra):
    """A CloudTrail client that does not retry (to see AWS's throttling itself)."""
    return boto3.client("cloudtrail", endpoint_url=aws.sandbox.endpoint, region_name="us-east-1",
                        aws_access_key_id="sandbox", aws_secret_access_key="sandbox",
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}), **extra)


def test_lookup_events_names_who_made_each_write_by_aws_rules(aws):
    iam = aws.client("iam")
    iam.create_user(UserName="bob")
    key = iam.create_access_key(UserName="bob")["AccessKey"]
    bob = boto3.client("dynamodb", endpoint_url=aws.sandbox.endpoint, region_name="us-east-1",
                       aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    bob.create_table(TableName="Audit", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "S"}])
    aws.client("dynamodb").describe_table(TableName="Audit")  # a read: not recorded
    ct = lookups(aws)
    found = lookup_events(ct, LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": "Audit"}])
    assert [e["EventName"] for e in found["Events"]] == ["CreateTable"]
    event = found["Events"][0]
    assert event["Username"] == "bob" and event["AccessKeyId"] == key["AccessKeyId"]
    assert event["Resources"] == [{"ResourceType": "AWS::DynamoDB::Table", "ResourceName": "Audit"}]
    record = json.loads(event["CloudTrailEvent"])
    assert record["userIdentity"]["arn"] == "arn:aws:iam::123456789012:user/bob"
    assert record["eventSource"] == "dynamodb.amazonaws.com" and record["readOnly"] is False
    assert record["requestParameters"]["tableName"] == "Audit"
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert lookup_events(ct, StartTime=later)["Events"] == []  # the time range bounds them


def test_lookup_events_keeps_aws_limits(aws):
    ct = lookups(aws)  # a throttled call waits for AWS's next second (lookup_events): the refusal is the rule's
    with pytest.raises(ct.exceptions.InvalidLookupAttributesException):
        lookup_events(ct, LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "CreateTable"},
                                            {"AttributeKey": "Username", "AttributeValue": "bob"}])
    with pytest.raises(ct.exceptions.InvalidMaxResultsException):
        lookup_events(ct, MaxResults=51)


def test_lookup_events_pages_newest_first(aws):
    ddb = aws.client("dynamodb")
    for n in range(3):
        ddb.create_table(TableName=f"Page{n}", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "S"}])
    ct = lookups(aws)  # no retries of botocore's: a throttled lookup waits for AWS's next second (lookup_events)
    first = lookup_events(ct, MaxResults=2)
    rest = lookup_events(ct, MaxResults=2, NextToken=first["NextToken"])
    names = [json.loads(e["CloudTrailEvent"])["requestParameters"]["tableName"] for e in first["Events"]
             + rest["Events"] if e["EventName"] == "CreateTable"]
    assert names[:3] == ["Page2", "Page1", "Page0"]


def test_the_plan_says_how_long_aws_will_take(aws, cli, example_specs):
    aws.set_time("aws")  # the sandbox at AWS's own durations (the plan reads nothing else of it)
    result = cli("plan", str(example_specs), "--json")
    assert result.code == 0, result.err
    plan = result.json
    cache = next(c for c in plan["changes"] if c["kind"] == "CacheCluster")
    assert cache["steps"][0]["work"] == "elasticache.create" and cache["steps"][0]["expectedSeconds"] == 600
    tables = [c for c in plan["changes"] if c["kind"] == "Table"]
    assert all(t["steps"][0]["expectedSeconds"] == 20 for t in tables)  # CreateTable: typical 20 s
    assert all("expectedSeconds" in s for c in plan["changes"] for s in c.get("steps", []))
    assert plan["expectedSeconds"] >= 600  # the longest chain: the cache's ten minutes at least
    text = cli("plan", str(example_specs))
    assert "AWS should finish this in about" in text.out and "AWS takes ~10 min" in text.out


def test_the_iam_policy_allows_the_lookup():
    assert "cloudtrail:LookupEvents" in allowed_actions(policy())


TABLE = """\
apiVersion: reconciler/v1
kind: Table
metadata: {name: Slow}
spec: {partitionKey: {name: Id, type: S}, billingMode: PROVISIONED, capacity: {read: 1, write: 1}}
"""


def test_apply_wait_shows_the_time_left_plain_lines_off_a_terminal(aws, cli, specs):
    aws.set_time(0.2)  # CreateTable: 4 s
    result = cli("apply", str(specs("t.yaml", TABLE)), "--auto-approve", "--wait", "--no-lease")
    assert result.code == 0, result.err
    lines = [line for line in result.out.splitlines() if line.startswith("[")]
    assert lines and "Table/Slow: dynamodb.create" in lines[0] and "of ~4s" in lines[0]
    assert "\r" not in result.out and "\033[K" not in result.out  # plain lines, one per poll
    assert "All changes are applied and deployed." in result.out


def test_apply_wait_redraws_one_progress_bar_on_a_terminal(aws, specs, tmp_path):
    import os
    import pty
    import subprocess

    from tests.conftest import reconciler_command

    aws.set_time(0.2)
    root = specs("t.yaml", TABLE)
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([*reconciler_command(), "apply", str(root), "--auto-approve", "--wait", "--no-lease"],
                            env={**aws.env, "NO_COLOR": "1"}, stdin=terminal, stdout=terminal,
                            stderr=subprocess.DEVNULL, cwd=tmp_path)
    os.close(terminal)
    out = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the other end closed: the process is done
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=120) == 0
    os.close(controller)
    text = out.decode(errors="replace")
    assert "\r[" in text and "\n[" not in text, repr(text[-600:])  # one bar redrawn in place, never a new line
    bar = text.rsplit("\r[", 1)[1].split("\r", 1)[0]
    assert "%  Table/Slow: dynamodb.create" in bar and ("left" in bar or "longer than usual" in bar)
