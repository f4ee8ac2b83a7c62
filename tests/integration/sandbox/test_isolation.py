"""One resource failing does not hold back the others; the run still says it failed."""

from __future__ import annotations

STACK = """\
apiVersion: reconciler/v1
kind: Table
metadata: {name: Orders}
spec:
  partitionKey: {name: OrderId, type: S}
---
apiVersion: reconciler/v1
kind: CacheCluster
metadata: {name: app-cache}
spec:
  allowFrom: [{securityGroupName: no-such-group}]
"""


def test_a_failing_resource_does_not_stop_the_others(cli, specs, aws):
    root = specs("stack.yaml", STACK)
    result = cli("apply", "--auto-approve", str(root))
    assert result.code == 1
    assert "CacheCluster/app-cache cannot be planned" in result.out
    assert "no security group named 'no-such-group'" in result.out
    assert "Table/Orders: create complete" in result.out
    assert "Orders" in aws.client("dynamodb").list_tables()["TableNames"]
    assert aws.client("elasticache").describe_replication_groups()["ReplicationGroups"] == []
