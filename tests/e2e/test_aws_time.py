"""The agent against a sandbox that keeps AWS's time (factor 0.01: a cache takes 6 s to create, a node
type change 12 s, a TTL change 36 s): each change of the scenario converges cycle by cycle, no write
is ever refused by AWS, and no cycle waits for AWS. bench/convergence.py prints the same figures."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import ROOT, reconciler_command
from tests.e2e.convergence import SCENARIO, converge

pytestmark = pytest.mark.slow

FACTOR = 0.01  # a 10-minute cache creation: 6 s; the TTL change of the example: 36 s
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


CACHE = """\
apiVersion: reconciler/v1
kind: CacheCluster
metadata: {name: app-cache}
spec:
  nodeType: NODE
  transitEncryption: false
  allowFrom: [{securityGroupName: bastion}]
"""


def test_healthz_stays_green_and_cycles_stay_short_through_a_long_cache_modification(aws, specs, tmp_path):
    """A node type change keeps the cache `modifying` for AWS's 20 minutes (x 0.02 = 24 s here): the daemon
    reports it pending, keeps cycling in seconds (looking again every --pending-interval), never
    re-sends the change, and /healthz answers 200 throughout."""
    import json
    import signal
    import subprocess
    import time
    import urllib.request

    from tests.conftest import free_port, wait_for

    root = specs("cache.yaml", CACHE.replace("NODE", "cache.t3.micro"))
    port, log = free_port(), tmp_path / "daemon.log"
    proc = subprocess.Popen([*reconciler_command(), "run", str(root), "--interval", "1m", "--pending-interval", "1s",
                             "--http-port", str(port), "--http-host", "127.0.0.1", "--no-lease"],
                            env=aws.env, stdout=subprocess.DEVNULL, stderr=log.open("w"))

    def get(path: str) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
                return answer.status, json.loads(answer.read() or b"{}") if path == "/status" else {}
        except urllib.error.HTTPError as exc:
            return exc.code, {}

    def resource() -> dict:
        return (get("/status")[1].get("resources") or [{}])[0]

    try:
        wait_for(lambda: resource().get("state") == "in-sync", what="the cache created")
        aws.set_time(0.02)
        specs("cache.yaml", CACHE.replace("NODE", "cache.t3.small"))
        proc.send_signal(signal.SIGHUP)  # a cycle now (as a commit would bring)
        wait_for(lambda: resource().get("state") == "pending", what="the modification pending")
        started, codes = time.monotonic(), []
        while resource()["state"] == "pending" and time.monotonic() - started < 120:
            codes.append(get("/healthz")[0])
            time.sleep(1)
        modifying_s = time.monotonic() - started
        assert resource()["state"] == "in-sync"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    cycles = [e["duration_ms"] / 1000 for e in events if e["event"] == "cycle.done"]
    print(f"modifying for {modifying_s:.1f} s: {len(codes)} /healthz polls, {len(cycles)} cycles, "
          f"longest {max(cycles):.2f} s")
    assert modifying_s >= 15 and set(codes) == {200}
    assert len(cycles) >= 10 and max(cycles) < 5  # cycles went on, in seconds, while AWS worked
    assert aws.errors() == {}  # no write AWS would refuse (the modify was sent once)
    modifies = [r["count"] for r in aws.requests() if r["operation"] == "ModifyReplicationGroup"]
    assert modifies == [1]
    group = aws.client("elasticache").describe_replication_groups(ReplicationGroupId="app-cache")
    assert group["ReplicationGroups"][0]["CacheNodeType"] == "cache.t3.small"
