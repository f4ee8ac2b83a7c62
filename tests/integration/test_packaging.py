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

from reconciler.iam import allowed_actions, iam_actions
from tests.conftest import ROOT, free_port, reconciler_command


def test_iam_policy_covers_every_call_the_agent_makes(cli, aws, example_specs, tmp_path):
    """Every call the agent made in a full run (create, update, invalidate, delete), named by botocore
    itself (RECONCILER_CALL_LOG), is allowed by `iam-policy SPECS`; and that policy scopes what matters."""
    calls = tmp_path / "calls.log"
    env = {**aws.env, "REDIS_AUTH_TOKEN": "policy-test-token-1", "RECONCILER_CALL_LOG": str(calls)}
    document = cli("iam-policy", str(example_specs)).json
    allowed = allowed_actions(document)
    # the agent's own cycle first (it creates the lease table), then applies that take the lease
    assert cli("run", "--once", str(example_specs), env=env).code == 0
    stack = (example_specs / "site.yaml").read_text().replace("Static site", "Static site v2")
    (example_specs / "site.yaml").write_text(stack.replace('revision: "2025-09-23"', 'revision: "2025-09-24"'))
    assert cli("apply", "--auto-approve", str(example_specs), env=env).code == 0
    tomb = (example_specs / "tables.yaml").read_text().replace(
        "name: Products${suffix:=}\n", "name: Products${suffix:=}\n  state: absent\n  deletion: delete\n")
    (example_specs / "tables.yaml").write_text(tomb)
    assert cli("apply", "--auto-approve", str(example_specs), env=env).code == 0
    used = {a for line in calls.read_text().splitlines() for a in iam_actions(*line.split())}
    assert used - allowed == set()
    assert len(used) > 30  # the run exercised the whole stack, not a corner of it

    def resources_for(action: str) -> list[tuple[object, object]]:
        return [(s["Resource"], s.get("Condition")) for s in document["Statement"] if action in s["Action"]]

    assert resources_for("dynamodb:DeleteTable") == [([
        "arn:aws:dynamodb:*:*:table/Products", "arn:aws:dynamodb:*:*:table/Products/*",
        "arn:aws:dynamodb:*:*:table/Users", "arn:aws:dynamodb:*:*:table/Users/*"], None)]
    assert resources_for("s3:DeleteBucket") == [(["arn:aws:s3:::example-site-bucket",
                                                  "arn:aws:s3:::example-site-bucket/*"], None)]
    assert resources_for("s3:GetObject")[0][0] != "*"  # data is never readable everywhere
    [(where, condition)] = resources_for("cloudfront:DeleteDistribution")
    assert where == "*" and condition == {"StringEquals": {"aws:ResourceTag/managed-by": "reconciler"}}
    assert resources_for("elasticache:DeleteReplicationGroup")[0][0][0] == (
        "arn:aws:elasticache:*:*:replicationgroup:app-cache")
    assert "secretsmanager:GetSecretValue" not in allowed  # the example's token comes from the environment
    [lease] = [s for s in document["Statement"] if s["Sid"] == "AgentLease"]
    assert lease["Resource"] == "arn:aws:dynamodb:*:*:table/reconciler-lease"  # scoped to the lease table
    unscoped = {a for s in document["Statement"] if s["Resource"] == "*" and "Condition" not in s
                for a in s["Action"] if not a.split(":", 1)[1].startswith(("Describe", "List", "Get", "Lookup"))}
    assert unscoped == {"cloudfront:CreateOriginAccessControl", "cloudfront:DeleteOriginAccessControl"}


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
