"""The agent against a sandbox that keeps AWS's time (factor 0.01: a cache takes 6 s to create, a node
type change 12 s, a TTL change 36 s): each change of the scenario converges cycle by cycle, no write
is ever refused by AWS, and no cycle waits for AWS. bench/convergence.py prints the same figures."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import ROOT, reconciler_command
from tests.e2e.convergence import SCENARIO, converge

pytestmark = pytest.mark.slow

FACTOR = 0.01
CYCLE_BOUND_S = 8.0  # a cycle never waits for AWS: reads, a few writes, the health check


def test_changes_converge_step_by_step_with_no_write_refused(aws, tmp_path):
    root = tmp_path / "example"
    shutil.copytree(ROOT / "specs", root / "specs")
    shutil.copytree(ROOT / "site", root / "site")
    specs, env = root / "specs", {**aws.env, "REDIS_AUTH_TOKEN": "e2e-token-0123456789"}
    ddb, ec, cf = aws.client("dynamodb"), aws.client("elasticache"), aws.client("cloudfront")
    cache = lambda: ec.describe_replication_groups(ReplicationGroupId="app-cache")["ReplicationGroups"][0]  # noqa: E731
    aws.set_time(FACTOR)

    def before(name: str) -> None:
        if name == "distribution change while it deploys":  # make sure it is deploying when the change comes
            [summary] = cf.list_distributions()["DistributionList"]["Items"]
            aws.set_time("aws")
            answer = cf.get_distribution_config(Id=summary["Id"])
            cf.update_distribution(Id=summary["Id"], IfMatch=answer["ETag"],
                                   DistributionConfig=answer["DistributionConfig"])
            assert cf.get_distribution(Id=summary["Id"])["Distribution"]["Status"] == "InProgress"
            aws.set_time(FACTOR)

    def after(name: str) -> None:
        if name == "create the example stack":
            assert cache()["Status"] == "available" and len(cache()["MemberClusters"]) == 2
        elif name.startswith("billing switch"):
            table = ddb.describe_table(TableName="Users")["Table"]
            assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
            assert {g["IndexName"]: g["IndexStatus"] for g in table["GlobalSecondaryIndexes"]} == {
                "ByRole": "ACTIVE", "ByName": "ACTIVE", "ByEmail": "ACTIVE"}
            assert cache()["CacheNodeType"] == "cache.t3.small" and len(cache()["MemberClusters"]) == 3
        elif name.startswith("distribution change"):
            [summary] = cf.list_distributions()["DistributionList"]["Items"]
            config = cf.get_distribution_config(Id=summary["Id"])["DistributionConfig"]
            assert config["PriceClass"] == "PriceClass_200" and config["Comment"] == "Static site v3"
        elif name.startswith("replicas to 0"):
            assert cache()["MemberClusters"] == ["app-cache-001"] and cache()["AutomaticFailover"] == "disabled"
        elif name.startswith("allowed cache replacement"):
            assert cache()["NodeGroups"][0]["PrimaryEndpoint"]["Port"] == 6380 and cache()["Status"] == "available"

    for name, change in SCENARIO:
        change(specs)
        before(name)
        result = converge(reconciler_command(), specs, env, tmp_path)
        print(f"{name}: converged={result.converged} in {len(result.cycles)} cycles, {result.seconds:.1f} s, "
              f"longest cycle {result.longest_cycle_s:.2f} s")
        assert result.converged, [c.__dict__ for c in result.cycles[-3:]]
        assert result.longest_cycle_s <= CYCLE_BOUND_S, [c.duration_s for c in result.cycles]
        assert aws.errors() == {}, f"writes refused by AWS in {name}: {aws.errors()}"
        after(name)
