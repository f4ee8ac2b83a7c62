"""`apply` killed with SIGKILL at many points, then run again: converges, no duplicates."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

from tests.conftest import reconciler_command
from tests.integration.test_faults import STACK

KILL_AFTER_S = (0.3, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 1.0, 1.2)


def reset(aws) -> None:
    request = urllib.request.Request(aws.sandbox.endpoint + "/moto-api/reset", method="POST")
    urllib.request.urlopen(request).close()
    aws.sandbox.seed()


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


def test_killed_applies_converge_without_duplicates(cli, specs, aws):
    root = specs("stack.yaml", STACK)
    killed_mid_run = 0
    for delay in KILL_AFTER_S:
        reset(aws)
        proc = subprocess.Popen([*reconciler_command(), "apply", "--auto-approve", str(root)], env=aws.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if proc.poll() is None:
            proc.kill()
            killed_mid_run += 1
        proc.wait()
        finished = cli("apply", "--auto-approve", str(root))
        assert finished.code == 0, f"after a kill at {delay}s: {finished.out}"
        assert cli("plan", "--detailed-exitcode", str(root)).code == 0
        assert counts(aws) == {"distributions": 1, "oacs": 1, "tables": 2, "buckets": 1, "caches": 1,
                               "cache security groups": 1}, f"after a kill at {delay}s"
    print(f"\ncrash safety: {len(KILL_AFTER_S)} kill points, {killed_mid_run} killed mid-run, all converged",
          file=sys.stderr)
    assert killed_mid_run >= len(KILL_AFTER_S) // 2  # the kills really landed during applies


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
