"""Changes AWS takes only in steps, carried out by `apply --wait` at AWS's time (factor 0.01), with not one
write refused by the sandbox's AWS rules."""

from __future__ import annotations

import pytest

from tests.specs import cache

pytestmark = pytest.mark.slow

TABLE = """\
apiVersion: reconciler/v1
kind: Table
metadata: {name: Orders}
spec:
  partitionKey: {name: Id, type: S}
  BILLING
  globalSecondaryIndexes:
    - {name: ByCustomer, partitionKey: {name: Customer, type: S}, projection: KEYS_ONLY}
"""
PROVISIONED = "billingMode: PROVISIONED\n  capacity: {read: 5, write: 5}"


def test_provisioned_to_on_demand_with_an_index(cli, specs, aws):
    """Before: KeyError 'capacity', reported as a failure of DescribeTable, and the rest skipped."""
    root = specs("t.yaml", TABLE.replace("BILLING", PROVISIONED))
    assert cli("apply", "--auto-approve", str(root)).code == 0
    aws.set_time(0.01)
    aws.reset_requests()
    specs("t.yaml", TABLE.replace("BILLING", "billingMode: PAY_PER_REQUEST"))
    plan = cli("plan", "--json", str(root))
    [change] = plan.json["changes"]
    assert [s["description"] for s in change["steps"]] == ["UpdateTable: billing mode PROVISIONED -> PAY_PER_REQUEST"]
    applied = cli("apply", "--auto-approve", "--wait=120", str(root))
    assert applied.code == 0, applied.out + applied.err
    assert "internal error" not in applied.out + applied.err
    table = aws.client("dynamodb").describe_table(TableName="Orders")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0
    assert aws.errors() == {}

CACHE = cache()


def test_auth_token_rotation_goes_rotate_then_set(cli, specs, aws):
    """Before: ROTATE was sent and never SET, so the old token stayed valid for ever."""
    from moto.elasticache.models import elasticache_backends

    from reconciler.sandbox.elasticache import valid_tokens

    root = specs("cache.yaml", CACHE)
    old = {**aws.env, "REDIS_AUTH_TOKEN": "old-token-0123456789"}
    new = {**aws.env, "REDIS_AUTH_TOKEN": "new-token-0123456789"}
    assert cli("apply", "--auto-approve", str(root), env=old).code == 0
    group = elasticache_backends["123456789012"]["us-east-1"].replication_groups["app-cache"]
    assert valid_tokens(group) == ["old-token-0123456789"]
    aws.set_time(0.01)
    aws.reset_requests()
    plan = cli("plan", "--json", str(root), env=new)
    [change] = plan.json["changes"]
    assert [s["description"].split(" (")[0] for s in change["steps"]] == [
        "ModifyReplicationGroup: AUTH token ROTATE", "ModifyReplicationGroup: AUTH token SET",
        "record the new token's fingerprint"]
    assert "new-token" not in plan.out
    first = cli("apply", "--auto-approve", str(root), env=new)  # one step, then AWS is busy: pending
    assert first.code == 0 and "in progress" in first.out
    assert valid_tokens(group) == ["old-token-0123456789"]  # ROTATE has not landed yet
    applied = cli("apply", "--auto-approve", "--wait=120", str(root), env=new)
    assert applied.code == 0, applied.out + applied.err
    assert valid_tokens(group) == ["new-token-0123456789"]  # SET: the old token no longer works
    assert cli("plan", "--detailed-exitcode", str(root), env=new).code == 0
    assert aws.errors() == {}
    [modify] = [r for r in aws.requests() if r["operation"] == "ModifyReplicationGroup"]
    assert modify["count"] == 2  # ROTATE once, SET once
