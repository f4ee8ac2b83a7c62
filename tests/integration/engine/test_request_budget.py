"""Request budgets, counted at the sandbox's server (every request that reached it, retries included): what a plan
of a converged stack costs is deterministic, so it is asserted, not measured. A change that brings back a read per
resource (tags one by one, a listing per table) fails here. (An event's reconcile, only the touched resource's
reads and its fix, is asserted in tests/e2e/test_watch_events.py.)"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.conftest import ROOT

# docs/performance.md, "The converged example stack's 15 requests"
CONVERGED_EXAMPLE = Counter({
    "DescribeTable": 2, "DescribeContinuousBackups": 2, "DescribeTimeToLive": 1, "BatchGetItem": 1,
    "GetDistribution": 1, "GetBucketPolicy": 1, "GetPublicAccessBlock": 1, "ListObjectsV2": 1,
    "DescribeReplicationGroups": 1, "DescribeCacheClusters": 1, "DescribeCacheSubnetGroups": 1,
    "DescribeSecurityGroups": 1, "GetResources": 1,
})
TABLE = """\
apiVersion: reconciler/v1
kind: Table
metadata: {{name: Budget{i:03d}}}
spec:
  partitionKey: {{name: Id, type: S}}
  billingMode: PAY_PER_REQUEST
  tags: {{team: web}}
"""


def served(aws) -> Counter[str]:
    return Counter({r["operation"]: r["count"] for r in aws.requests()})


def test_a_plan_of_the_converged_example_stack_makes_15_requests(cli, aws, example_specs):
    env = {**aws.env, "REDIS_AUTH_TOKEN": "budget-test-token-1"}
    assert cli("apply", "--auto-approve", "--wait", "120", str(example_specs), env=env).code == 0
    assert cli("plan", "--detailed-exitcode", str(example_specs), env=env).code == 0  # converged
    aws.reset_requests()
    assert cli("plan", "--detailed-exitcode", str(example_specs), env=env).code == 0
    assert served(aws) == CONVERGED_EXAMPLE
    assert sum(CONVERGED_EXAMPLE.values()) == 15
    said = " ".join((ROOT / "docs" / "performance.md").read_text().split())
    listed = ", ".join(f"{op} x{n}" if n > 1 else op for op, n in CONVERGED_EXAMPLE.items())
    assert f"The converged example stack's 15 requests: {listed}." in said


@pytest.mark.slow
def test_a_plan_of_many_tables_makes_at_most_1_1_requests_per_table(cli, aws, specs):
    count = 60
    for i in range(count):
        root = specs(f"t{i:03d}.yaml", TABLE.format(i=i))
    assert cli("apply", "--auto-approve", str(root)).code == 0
    aws.reset_requests()
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0
    requests = served(aws)
    assert requests["DescribeTable"] == count  # one read per table...
    assert "ListTagsOfResource" not in requests  # ...and their tags from the listing's pages (GetResources)
    assert sum(requests.values()) / count <= 1.1, requests
