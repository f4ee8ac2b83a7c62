"""What ships: the IAM policy covers every call, the Dockerfile lints, its entrypoint runs,
and the wheel carries the schemas."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from reconciler.engine.iam import OWNED, allowed_actions, is_read
from tests.conftest import ROOT, free_port, reconciler_command
from tests.iam_eval import TagBook, evaluate, parliament, parliament_disproved, read_calls


def test_iam_policy_allows_every_call_the_agent_makes_on_the_resource_it_touches(cli, aws, example_specs, tmp_path):
    """Every call the agent made in a full run (create, update, invalidate, delete), as botocore sent it
    (RECONCILER_CALL_LOG), is allowed by `iam-policy SPECS` when IAM evaluates it with AWS's authorization data:
    the action(s), the resource ARN it touched, and the tags the conditions read (tests/iam_eval.py)."""
    calls = tmp_path / "calls.log"
    env = {**aws.env, "REDIS_AUTH_TOKEN": "policy-test-token-1", "RECONCILER_CALL_LOG": str(calls)}
    document = cli("iam-policy", str(example_specs)).json
    tags = TagBook(aws.client)
    # the agent's own cycle first (it creates the lease table), then applies that take the lease
    assert cli("run", "--once", str(example_specs), env=env).code == 0
    tags.read()
    stack = (example_specs / "site.yaml").read_text().replace("Static site", "Static site v2")
    (example_specs / "site.yaml").write_text(stack.replace('revision: "2025-09-23"', 'revision: "2025-09-24"'))
    cache = (example_specs / "cache.yaml").read_text()
    bastion = "    - {securityGroupName: bastion}"
    (example_specs / "cache.yaml").write_text(cache.replace(bastion, "    - {cidr: 10.1.0.0/16}\n" + bastion))
    assert cli("apply", "--auto-approve", str(example_specs), env=env).code == 0
    tags.read()
    tomb = (example_specs / "tables.yaml").read_text().replace(
        "name: Products${suffix:=}\n", "name: Products${suffix:=}\n  state: absent\n  deletion: delete\n")
    (example_specs / "tables.yaml").write_text(tomb)
    (example_specs / "cache.yaml").write_text(cache)  # the ingress rule revoked
    assert cli("apply", "--auto-approve", str(example_specs), env=env).code == 0

    evaluation = evaluate(read_calls(calls), document, tags)
    assert evaluation.denied == []
    actions = {r.action for r in evaluation.requests}
    assert {"cloudfront:CreateInvalidation", "cloudfront:UpdateDistribution", "cloudfront:TagResource",
            "ec2:CreateTags", "ec2:RevokeSecurityGroupIngress", "elasticache:AddTagsToResource",
            "dynamodb:DeleteTable", "s3:PutObject"} <= actions  # the whole stack, tag-on-create included
    assert len(evaluation.pairs) > 60
    # the evaluation can fail: without the tags AWS would see, the tag-conditioned writes are denied
    untagged = evaluate(read_calls(calls), document)
    assert {r.action for r in untagged.denied} >= {"cloudfront:UpdateDistribution", "ec2:AuthorizeSecurityGroupIngress"}

    def resources_for(action: str) -> list[tuple[object, object]]:
        return [(s["Resource"], s.get("Condition")) for s in document["Statement"] if action in s["Action"]]

    assert resources_for("dynamodb:DeleteTable") == [([
        "arn:aws:dynamodb:*:*:table/Products", "arn:aws:dynamodb:*:*:table/Products/*",
        "arn:aws:dynamodb:*:*:table/Users", "arn:aws:dynamodb:*:*:table/Users/*"], None)]
    assert resources_for("s3:DeleteBucket") == [(["arn:aws:s3:::example-site-bucket",
                                                  "arn:aws:s3:::example-site-bucket/*"], None)]
    assert resources_for("s3:GetObject")[0][0] != "*"  # data is never readable everywhere
    [(where, condition)] = resources_for("cloudfront:DeleteDistribution")
    assert where == "arn:aws:cloudfront::*:distribution/*" and condition == OWNED
    assert resources_for("elasticache:DeleteReplicationGroup")[0][0][0] == (
        "arn:aws:elasticache:*:*:replicationgroup:app-cache")
    assert "secretsmanager:GetSecretValue" not in allowed_actions(document)  # the token comes from the environment
    [lease] = [s for s in document["Statement"] if s["Sid"] == "AgentLease"]
    assert lease["Resource"] == "arn:aws:dynamodb:*:*:table/reconciler-lease"  # scoped to the lease table


@pytest.mark.parametrize("args", [(), ("--watch-events",), ("--read-only",), ("SPECS",), ("SPECS", "--watch-events"),
                                  ("SPECS", "--read-only"), ("ENV",), ("ENV", "--watch-events")])
def test_parliament_finds_nothing_and_nothing_deletes_everywhere(cli, example_specs, args):
    """parliament, the IAM policy linter, reports nothing above INFO for every policy `iam-policy` prints (less
    what AWS's current authorization data disproves in its bundled copy); no Delete* is allowed on "*" without a
    condition, nor any write on "*" but the creates AWS authorises on no resource type."""
    where = {"SPECS": str(example_specs), "ENV": str(ROOT / "envs" / "prod")}
    document = cli("iam-policy", *[where.get(a, a) for a in args]).json
    assert parliament(document) == []
    assert set(parliament_disproved(document)) <= {"cloudfront:CreateDistribution"}
    for statement in document["Statement"]:
        anywhere = statement["Resource"] == "*" and "Condition" not in statement
        for action in statement["Action"]:
            if action.split(":", 1)[1].startswith("Delete"):
                assert not (statement["Resource"] == "*" and "Condition" not in statement), statement
            if anywhere and not is_read(action):
                assert action == "cloudfront:CreateOriginAccessControl", statement  # AWS: no resource type


def test_iam_policy_without_specs_scopes_by_kind_and_secrets_by_reference(cli, specs):
    document = cli("iam-policy").json
    [delete] = [s for s in document["Statement"] if "dynamodb:DeleteTable" in s["Action"]]
    assert delete["Resource"] == ["arn:aws:dynamodb:*:*:table/*", "arn:aws:dynamodb:*:*:table/*/*"]
    cache = ("apiVersion: reconciler/v1\nkind: CacheCluster\nmetadata: {name: c1}\n"
             "spec: {allowFrom: [{securityGroupName: bastion}], authToken: {fromSecretsManager: prod/redis}}\n")
    scoped = cli("iam-policy", str(specs("c.yaml", cache))).json
    [secret] = [s for s in scoped["Statement"] if "secretsmanager:GetSecretValue" in s["Action"]]
    assert secret["Resource"] == ["arn:aws:secretsmanager:*:*:secret:prod/redis*"]
    assert not any("dynamodb:DeleteTable" in s["Action"] for s in scoped["Statement"])  # no Table spec: none


def test_dockerfile_lints_clean_and_bakes_in_no_secrets():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER 10001$", text, re.M)
    assert not re.search(r"^(ENV|ARG).*(TOKEN|SECRET|PASSWORD|AWS_ACCESS)", text, re.M)
    assert 'ENTRYPOINT ["reconciler", "run"]' in text and "HEALTHCHECK" in text


def _exec_form(text: str, instruction: str) -> list[str]:
    return json.loads(re.search(rf"^{instruction} (\[.*\])$", text, re.M).group(1))


def test_entrypoint_and_healthcheck_run_as_the_container_would(aws, tmp_path, example_specs):
    text = (ROOT / "Dockerfile").read_text()
    command = _exec_form(text, "ENTRYPOINT") + _exec_form(text, "CMD")
    assert command[:2] == ["reconciler", "run"]
    healthcheck = json.loads(re.search(r'CMD (\["python", "-m", "reconciler.agent.probe"\])', text).group(1))
    port = free_port()
    env = {**aws.env, "RECONCILER_HTTP_PORT": str(port), "RECONCILER_HTTP_HOST": "127.0.0.1",
           "RECONCILER_STATE_DIR": str(tmp_path / "state"), "RECONCILER_INTERVAL": "1h",
           "REDIS_AUTH_TOKEN": "entrypoint-token-1"}
    proc = subprocess.Popen([*reconciler_command(), *command[1:]], cwd=example_specs.parent, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        probe = [sys.executable if healthcheck[0] == "python" else healthcheck[0], *healthcheck[1:]]
        deadline, code = time.monotonic() + 60, 1
        while time.monotonic() < deadline and code != 0:
            code = subprocess.run(probe, env=env, capture_output=True).returncode
            time.sleep(0.3)
        assert code == 0, "the HEALTHCHECK command never succeeded"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    stopped = subprocess.run(probe, env=env, capture_output=True, text=True)
    assert stopped.returncode == 1 and "unhealthy" in stopped.stderr
    assert "entrypoint-token-1" not in proc.stderr.read()


def test_the_wheel_carries_the_schemas(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True,
                   env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    [wheel] = tmp_path.glob("reconciler-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for kind in ("common", "table", "bucket", "distribution", "cachecluster"):
        assert f"reconciler/_schemas/{kind}.schema.json" in names
