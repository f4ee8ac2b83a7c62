"""`apply` killed with SIGKILL at many points, then run again: converges, no duplicates."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request

import pytest

from tests.conftest import reconciler_command
from tests.integration.test_faults import STACK


def reset(aws) -> None:
    request = urllib.request.Request(aws.sandbox.endpoint + "/moto-api/reset", method="POST")
    urllib.request.urlopen(request).close()
    aws.sandbox.seed()
    aws.reset_requests()


def arm_kill(aws, pid: int, after_writes: int) -> None:
    """The sandbox kills `pid` with SIGKILL right after serving its `after_writes`-th write."""
    aws._post("/_sandbox/kill", {"afterWrites": after_writes, "pid": pid})


def writes(aws) -> int:
    return sum(r["count"] for r in aws.requests() if not r["read"])


def counts(aws) -> dict[str, int]:
    cf, ec2 = aws.client("cloudfront"), aws.client("ec2")
    return {
        "distributions": len(cf.list_distributions()["DistributionList"].get("Items") or []),
        "oacs": len(cf.list_origin_access_controls()["OriginAccessControlList"].get("Items") or []),
        "tables": len(aws.client("dynamodb").list_tables()["TableNames"]),
        "buckets": len(aws.client("s3").list_buckets()["Buckets"]),
        "caches": len(aws.client("elasticache").describe_replication_groups()["ReplicationGroups"]),
        "cache security groups": len(ec2.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": ["reconciler-app-cache"]}])["SecurityGroups"]),
    }


EXPECTED = {"distributions": 1, "oacs": 1, "tables": 2, "buckets": 1, "caches": 1, "cache security groups": 1}


@pytest.mark.slow
def test_apply_killed_at_every_write_boundary_converges_without_duplicates(cli, specs, aws):
    """The sandbox kills `apply` right after serving its k-th write, for every k of a full apply of a
    five-resource stack; another apply then converges it, with exactly one of everything."""
    root = specs("stack.yaml", STACK)
    reset(aws)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    boundaries = writes(aws)
    assert boundaries >= 10
    killed = 0
    for k in range(1, boundaries + 1):
        reset(aws)
        proc = subprocess.Popen([*reconciler_command(), "apply", "--auto-approve", str(root)], env=aws.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        arm_kill(aws, proc.pid, k)
        proc.wait(timeout=120)
        arm_kill(aws, proc.pid, 0)  # disarm, in case it finished before its k-th write
        killed += proc.returncode == -signal.SIGKILL
        assert writes(aws) >= k or proc.returncode == 0
        finished = cli("apply", "--auto-approve", str(root))
        assert finished.code == 0, f"after a kill at write {k}: {finished.out}{finished.err}"
        assert cli("plan", "--detailed-exitcode", str(root)).code == 0, f"after a kill at write {k}"
        assert counts(aws) == EXPECTED, f"after a kill at write {k}"
    print(f"\ncrash safety: {boundaries} write boundaries, {killed} kills landed, all converged", file=sys.stderr)
    assert killed >= boundaries - 1  # the last write may end the run before the kill


BUCKET = "apiVersion: reconciler/v1\nkind: Bucket\nmetadata: {name: half-made}\nspec: {tags: {team: web}}\n"


def test_an_untagged_bucket_is_finished_only_if_this_agent_was_creating_it(cli, specs, aws):
    import json
    from pathlib import Path

    root = specs("b.yaml", BUCKET)
    aws.client("s3").create_bucket(Bucket="half-made")  # as a kill between CreateBucket and tagging leaves it
    refused = cli("plan", "--json", str(root))
    [change] = refused.json["changes"]
    assert change["action"] == "error" and "not created by reconciler" in change["error"]  # no journal: not ours

    journal = Path(aws.env["RECONCILER_STATE_DIR"]) / "intents.json"
    journal.write_text(json.dumps({"Bucket/half-made": 1.0}))
    plan = cli("plan", "--json", str(root))
    [change] = plan.json["changes"]
    assert change["action"] == "update"
    assert {"spec.tags.managed-by", "spec.tags.reconciler:name"} <= {f["path"] for f in change["fields"]}
    assert cli("apply", "--auto-approve", str(root)).code == 0
    assert json.loads(journal.read_text()) == {}
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0
