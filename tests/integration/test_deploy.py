"""What runs the agent on an existing engine: the Kustomize base and overlays rendered by `kubectl kustomize` and
validated against Kubernetes' own schemas; the ECS task definition registered with the sandbox's ECS and read back;
the policies that go with them; and the read-only policy of a pull request's plan job, against every call a plan
makes."""

from __future__ import annotations

import json
import shutil
import subprocess

import boto3
import kubernetes_validate
import pytest
import yaml

from reconciler.engine.iam import allowed_actions
from tests.conftest import ROOT
from tests.iam_eval import evaluate, read_calls

KUBERNETES = ROOT / "deploy" / "kubernetes"
ECS = ROOT / "deploy" / "ecs"
KUBERNETES_VERSION = "1.30.0"  # the oldest minor EKS and GKE still support on 2026-12-01 that the schemas cover


def rendered(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing: ./scripts/test installs it (apt-get install kubectl)"
    proc = subprocess.run([kubectl, "kustomize", str(KUBERNETES / "overlays" / overlay)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.mark.parametrize("overlay", ["staging", "prod"])
def test_each_overlay_renders_and_passes_kubernetes_schemas(overlay):
    documents = rendered(overlay)
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)  # raises on any error
    by_kind = {d["kind"]: d for d in documents}
    assert sorted(by_kind) == ["Deployment", "Service", "ServiceAccount"]
    assert {d["metadata"]["namespace"] for d in documents} == {f"reconciler-{overlay}"}
    deployment = by_kind["Deployment"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"] == [f"envs/{overlay}"]  # the environment it follows
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["serviceAccountName"] == "reconciler"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/var/lib/reconciler", "/tmp", "/etc/reconciler/tls"}
    env = {e["name"]: e for e in container["env"]}
    assert env["RECONCILER_STATE_DIR"]["value"] == "/var/lib/reconciler"  # the writable state volume
    assert env["RECONCILER_GIT_URL"]["valueFrom"]["secretKeyRef"] == {"name": "reconciler", "key": "git-url"}
    # the page only over TLS: the pod serves HTTPS with the Secret's certificate, the Service forwards 443 to it
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert [p["name"] for p in container["ports"]] == ["https"]
    assert env["RECONCILER_HTTP_TLS_CERT"]["value"] == "/etc/reconciler/tls/tls.crt"
    assert {v["name"]: v.get("secret", {}).get("secretName") for v in pod["volumes"]}["tls"] == "reconciler-tls"
    assert by_kind["Service"]["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "https",
                                                    "appProtocol": "https"}]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    # sized from bench/daemon_memory.py (about 90 MiB resident, flat over 1,000 cycles)
    assert container["resources"] == {"requests": {"cpu": "50m", "memory": "128Mi"},
                                      "limits": {"cpu": "500m", "memory": "256Mi"}}
    account = {"staging": "111111111111", "prod": "222222222222"}[overlay]
    role = by_kind["ServiceAccount"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role == f"arn:aws:iam::{account}:role/reconciler"  # IRSA: the environment's own account
    environment = yaml.safe_load((ROOT / "envs" / overlay / "environment.yaml").read_text())
    assert environment["spec"]["aws"]["accountId"] == account


def test_a_broken_manifest_is_caught_by_the_schemas():
    [deployment] = [d for d in rendered("prod") if d["kind"] == "Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = ["https"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_ecs_task_definition_registers_and_reads_back(aws):
    definition = json.loads((ECS / "task-definition.json").read_text())
    ecs = aws.client("ecs")
    arn = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    task = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    assert task["requiresCompatibilities"] == ["FARGATE"] and task["networkMode"] == "awsvpc"
    assert task["taskRoleArn"] == "arn:aws:iam::222222222222:role/reconciler"
    [container] = task["containerDefinitions"]
    assert container["command"] == ["envs/prod"]
    assert container["healthCheck"]["command"] == ["CMD", "python", "-m", "reconciler.agent.probe"]
    assert container["logConfiguration"]["logDriver"] == "awslogs"
    assert container["logConfiguration"]["options"]["awslogs-group"] == "/ecs/reconciler-prod"
    assert container["readonlyRootFilesystem"] is True and container["user"] == "10001"
    environment = yaml.safe_load((ROOT / "envs" / "prod" / "environment.yaml").read_text())["spec"]["aws"]
    assert task["taskRoleArn"].split(":")[4] == environment["accountId"]
    assert container["logConfiguration"]["options"]["awslogs-region"] == environment["region"]


def test_the_ecs_service_keeps_the_port_on_the_private_network(aws):
    """The service runs the task in private subnets without a public address (the page is reached from inside the
    VPC: docs/deploy.md), never two at once (the lease would hold the second back)."""
    service_file = json.loads((ECS / "service.json").read_text())
    ecs = aws.client("ecs")
    ecs.create_cluster(clusterName=service_file["cluster"])
    ecs.register_task_definition(**json.loads((ECS / "task-definition.json").read_text()))
    ec2 = aws.client("ec2")  # the file's subnets and group are placeholders: this account's, as a user fills them in
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    group = ec2.describe_security_groups(GroupNames=["bastion"])["SecurityGroups"][0]["GroupId"]
    placeholders = service_file["networkConfiguration"]["awsvpcConfiguration"]
    assert all(s.startswith("subnet-") for s in placeholders["subnets"])
    placeholders.update(subnets=subnets, securityGroups=[group])
    ecs.create_service(**service_file)
    [service] = ecs.describe_services(cluster=service_file["cluster"], services=[service_file["serviceName"]])[
        "services"]
    network = service["networkConfiguration"]["awsvpcConfiguration"]
    assert network["assignPublicIp"] == "DISABLED" and network["securityGroups"]
    assert service_file["deploymentConfiguration"]["maximumPercent"] == 100  # moto does not echo it back
    assert service["desiredCount"] == 1


def test_the_task_role_policy_is_what_iam_policy_prints(cli):
    printed = cli("iam-policy", str(ROOT / "envs" / "prod")).json
    assert json.loads((ECS / "task-role-policy.json").read_text()) == printed
    assert not any(s["Sid"] == "AgentEventQueue" for s in printed["Statement"])  # the task runs no --watch-events
    watching = cli("iam-policy", "--watch-events", str(ROOT / "envs" / "prod")).json
    [queue] = [s for s in watching["Statement"] if s["Sid"] == "AgentEventQueue"]
    assert queue["Resource"] == "arn:aws:sqs:*:*:reconciler-prod-events"  # the environment's own lease name


def test_the_read_only_policy_covers_every_call_of_a_plan_and_allows_no_write(cli, aws, tmp_path):
    for part in ("specs", "site", "envs"):
        shutil.copytree(ROOT / part, tmp_path / "repo" / part)
    calls = tmp_path / "calls.log"
    env = {**aws.env, "REDIS_AUTH_TOKEN": "read-only-test-token-1", "RECONCILER_CALL_LOG": str(calls)}
    prod = str(tmp_path / "repo" / "envs" / "prod")
    assert cli("apply", "--auto-approve", prod, env=env).code == 0
    calls.write_text("")
    policy = cli("iam-policy", "--read-only", prod).json
    assert cli("plan", prod, env=env).code == 0  # converged
    creds = aws.client("sts").assume_role(RoleArn="arn:aws:iam::222222222222:role/reconciler",
                                          RoleSessionName="drift")["Credentials"]
    boto3.client("dynamodb", endpoint_url=aws.sandbox.endpoint, region_name="eu-west-1",
                 aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                 aws_session_token=creds["SessionToken"]).put_item(
        TableName="Users-prod", Item={"UserId": {"S": "u-101"}, "Name": {"S": "Mallory"}})
    assert cli("plan", prod, env=env).code == 0  # with drift of an item
    evaluation = evaluate(read_calls(calls), policy)  # each read on the resource it touched, by AWS's data
    assert evaluation.denied == []
    used = {r.action for r in evaluation.requests}
    assert {a.split(":")[0] for a in used} >= {"dynamodb", "s3", "cloudfront", "elasticache", "ec2", "tag"}  # all kinds
    allowed = allowed_actions(policy)
    writes = {a for a in allowed if not a.split(":", 1)[1].startswith(("Describe", "List", "Get", "BatchGet",
                                                                        "Query", "Scan", "Lookup"))}
    assert writes == set()
    assert not any(s["Sid"].startswith("Agent") for s in policy["Statement"])  # no lease, no event queue
