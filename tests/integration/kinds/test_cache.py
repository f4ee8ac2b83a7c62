"""CacheCluster end to end in the sandbox: replication group, its security group, drift."""

from __future__ import annotations

CACHE = """\
apiVersion: reconciler/v1
kind: CacheCluster
metadata: {name: app-cache}
spec:
  engineVersion: "7.1"
  nodeType: cache.t3.micro
  replicas: 1
  allowFrom: [{securityGroupName: bastion}]
  authToken: {fromEnv: REDIS_AUTH_TOKEN}
  tags: {team: web}
"""
TOKEN = "first-token-0123456789"


def env_with(aws, token: str = TOKEN) -> dict[str, str]:
    return {**aws.env, "REDIS_AUTH_TOKEN": token}


def group(aws) -> dict:
    return aws.client("elasticache").describe_replication_groups(ReplicationGroupId="app-cache")["ReplicationGroups"][0]


def cache_sg(aws) -> dict:
    [sg] = aws.client("ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["reconciler-app-cache"]}])["SecurityGroups"]
    return sg


def bastion_id(aws) -> str:
    [sg] = aws.client("ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["bastion"]}])["SecurityGroups"]
    return sg["GroupId"]


def fields(plan: dict) -> set[str]:
    [change] = plan["changes"]
    return {f["path"] for f in change["fields"]}


def test_create_clean_and_only_the_bastion_may_connect(cli, specs, aws):
    root = specs("cache.yaml", CACHE)
    applied = cli("apply", "--auto-approve", str(root), env=env_with(aws))
    assert applied.code == 0, applied.out + applied.err
    assert cli("plan", "--detailed-exitcode", str(root), env=env_with(aws)).code == 0

    rg = group(aws)
    assert rg["CacheNodeType"] == "cache.t3.micro" and len(rg["MemberClusters"]) == 2
    assert rg["TransitEncryptionEnabled"] and rg["AuthTokenEnabled"]
    sg = cache_sg(aws)
    [rule] = sg["IpPermissions"]
    assert (rule["FromPort"], rule["ToPort"]) == (6379, 6379)
    assert [p["GroupId"] for p in rule["UserIdGroupPairs"]] == [bastion_id(aws)] and not rule["IpRanges"]
    tags = {t["Key"]: t["Value"] for t in aws.client("elasticache").list_tags_for_resource(
        ResourceName=rg["ARN"])["TagList"]}
    assert tags["managed-by"] == "reconciler" and len(tags["reconciler:auth-fingerprint"]) == 24
    assert TOKEN not in applied.out + applied.err and TOKEN not in str(tags)


def test_drift_of_node_type_tags_and_rules_is_corrected(cli, specs, aws):
    root = specs("cache.yaml", CACHE)
    assert cli("apply", "--auto-approve", str(root), env=env_with(aws)).code == 0
    ec, ec2 = aws.client("elasticache"), aws.client("ec2")
    ec.modify_replication_group(ReplicationGroupId="app-cache", CacheNodeType="cache.m5.large", ApplyImmediately=True)
    ec.add_tags_to_resource(ResourceName=group(aws)["ARN"], Tags=[{"Key": "team", "Value": "ops"}])
    sg_id = cache_sg(aws)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])

    plan = cli("plan", "--json", "--detailed-exitcode", str(root), env=env_with(aws))
    assert plan.code == 2
    assert fields(plan.json) == {"spec.nodeType", "spec.tags.team", "spec.allowFrom"}
    [change] = plan.json["changes"]
    allow = next(f for f in change["fields"] if f["path"] == "spec.allowFrom")
    assert "0.0.0.0/0 tcp/6379" in allow["before"] and "0.0.0.0/0 tcp/6379" not in allow["after"]

    assert cli("apply", "--auto-approve", str(root), env=env_with(aws)).code == 0
    assert cli("plan", "--detailed-exitcode", str(root), env=env_with(aws)).code == 0
    assert group(aws)["CacheNodeType"] == "cache.t3.micro"
    assert all(not r["IpRanges"] for r in cache_sg(aws)["IpPermissions"])

    # a missing bastion rule is restored
    ec2.revoke_security_group_ingress(GroupId=sg_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "UserIdGroupPairs": [{"GroupId": bastion_id(aws)}]}])
    plan = cli("plan", "--json", str(root), env=env_with(aws))
    assert fields(plan.json) == {"spec.allowFrom"}
    assert cli("apply", "--auto-approve", str(root), env=env_with(aws)).code == 0
    [rule] = cache_sg(aws)["IpPermissions"]
    assert [p["GroupId"] for p in rule["UserIdGroupPairs"]] == [bastion_id(aws)]


def test_replicas_and_token_rotation_are_in_place_and_the_token_is_never_shown(cli, specs, aws):
    root = specs("cache.yaml", CACHE)
    assert cli("apply", "--auto-approve", str(root), env=env_with(aws)).code == 0
    arn = group(aws)["ARN"]
    specs("cache.yaml", CACHE.replace("replicas: 1", "replicas: 2"))
    rotated = "second-token-9876543210"
    plan = cli("plan", "--json", str(root), env=env_with(aws, rotated))
    [change] = plan.json["changes"]
    assert change["action"] == "update"
    token = next(f for f in change["fields"] if f["path"] == "spec.authToken")
    assert token == {"path": "spec.authToken", "before": "(sensitive)", "after": "(sensitive)", "sensitive": True}
    text = cli("plan", str(root), env=env_with(aws, rotated))
    assert "spec.authToken = (sensitive value) -> (sensitive value)" in text.out
    applied = cli("apply", "--auto-approve", str(root), env=env_with(aws, rotated))
    assert applied.code == 0, applied.out + applied.err
    for output in (plan, text, applied):
        assert TOKEN not in output.out + output.err and rotated not in output.out + output.err
    assert len(group(aws)["MemberClusters"]) == 3 and group(aws)["ARN"] == arn
    assert cli("plan", "--detailed-exitcode", str(root), env=env_with(aws, rotated)).code == 0


def test_port_change_forces_replacement_and_is_refused(cli, specs, aws):
    root = specs("cache.yaml", CACHE)
    assert cli("apply", "--auto-approve", str(root), env=env_with(aws)).code == 0
    specs("cache.yaml", CACHE.replace("replicas: 1", "replicas: 1\n  port: 6380"))
    plan = cli("plan", "--json", str(root), env=env_with(aws))
    [change] = plan.json["changes"]
    assert change["action"] == "replace" and "allowReplacement" in change["refused"]
    assert any(f["path"] == "spec.port" and f.get("forcesReplacement") for f in change["fields"])


def test_example_stack_builds_in_the_sandbox_including_the_cache(example_specs, tmp_path):
    """`run --sandbox --once` on the example: every resource is created; with the sandbox's default
    AWS time (0.01) the cache is still `creating` when the cycle ends, and the cycle says so."""
    import json
    import os
    import re
    import subprocess

    from tests.conftest import reconciler_command

    env = {**os.environ, "REDIS_AUTH_TOKEN": "example-token-123456"}
    env.pop("RECONCILER_SANDBOX_TIME", None)
    result = subprocess.run([*reconciler_command(), "run", "--sandbox", "--once", str(example_specs)],
                            env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    started = {(e["kind"], e["name"]) for e in events if e["event"] in ("apply.create", "apply.create.pending")}
    assert started == {("Bucket", "example-site-bucket"), ("Distribution", "website"), ("Table", "Users"),
                       ("Table", "Products"), ("CacheCluster", "app-cache")}
    pending = {e["name"]: e["waiting"] for e in events if e["event"] == "apply.create.pending"}
    assert "replication group creating" in pending["app-cache"]
    done = next(e for e in events if e["event"] == "cycle.done")
    assert "CacheCluster/app-cache" in done["pending"]
    assert done["healthy"] is None  # the sandbox's checks are skipped (no Redis; the site deploying): no verdict
    assert "example-token-123456" not in result.stderr + result.stdout
    # without a terminal the output stays the daemon's JSON log, ending on the closing report as one event
    # (tests/e2e/test_terminal_report.py has the same command on a terminal)
    assert result.stdout == ""
    last = json.loads(result.stderr.splitlines()[-1])
    assert last["event"] == "cycle.summary" and last["level"] == "info"
    assert {k: last[k] for k in ("created", "updated", "pending", "failed", "unchanged")} == {
        "created": 1, "updated": 0, "pending": 4, "failed": 0, "unchanged": 0}
    assert {r["ref"]: r["result"] for r in last["resources"]} == {
        "Bucket/example-site-bucket": "created", "Table/Users": "pending", "Table/Products": "pending",
        "Distribution/website": "pending", "CacheCluster/app-cache": "pending"}
    assert last["next"].startswith("AWS is still working on 4 resource(s)")
    assert not re.search(r"\b(None|True|False)\b|\{'|\['", result.stderr)  # JSON values, never Python's
