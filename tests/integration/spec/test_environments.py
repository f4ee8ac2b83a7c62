"""Environments against the sandbox: the example stack as specs/ plus envs/staging and envs/prod, each applied in
its own account through a role assumed with STS; the account checked before anything else; two environments in
one account apart by their tags; a plan as a pull request comment; --changed-since on a real git history;
write-back into the file that states each value."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import boto3
import pytest

from reconciler.aws.client import Aws as AwsHandle
from tests.conftest import ROOT

STAGING, PROD = "111111111111", "222222222222"
TOKEN = "env-test-Redis-token-0123456789"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the repository's example: specs/ (the base), site/, envs/staging and envs/prod."""
    target = tmp_path / "repo"
    for part in ("specs", "site", "envs"):
        shutil.copytree(ROOT / part, target / part)
    return target


def as_account(aws, account: str, service: str):
    """A boto3 client acting in `account` of the sandbox (a role there, assumed with STS as the agent does)."""
    sts = aws.client("sts")
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/reconciler", RoleSessionName="test")["Credentials"]
    return boto3.client(service, endpoint_url=aws.sandbox.endpoint, region_name="eu-west-1",
                        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds["SessionToken"])


def run(cli, repo: Path, *args: str, env: dict[str, str] | None = None):
    return cli(*args[:-1], str(repo / args[-1]), env=env)


@pytest.mark.slow(weight=3)
def test_staging_and_prod_converge_each_in_its_own_account(cli, aws, repo):
    aws.set_time(0.003)  # the cache takes AWS's minutes (scaled): apply --wait sequences through them
    env = {**aws.env, "REDIS_AUTH_TOKEN": TOKEN}
    staging_plan = run(cli, repo, "plan", "envs/staging", env=env)
    assert staging_plan.code == 0, staging_plan.err
    assert "Table/Users-staging will be created" in staging_plan.out and "-prod" not in staging_plan.out
    for name in ("staging", "prod"):
        applied = run(cli, repo, "apply", "--auto-approve", "--wait", "600", f"envs/{name}", env=env, )
        assert applied.code == 0, applied.out + applied.err
        assert "All changes are applied and deployed." in applied.out
    for name in ("staging", "prod"):
        again = run(cli, repo, "plan", "--detailed-exitcode", f"envs/{name}", env=env)
        assert again.code == 0, again.out + again.err
        assert "Unmanaged" not in again.out
    staging, prod = as_account(aws, STAGING, "dynamodb"), as_account(aws, PROD, "dynamodb")
    assert staging.list_tables()["TableNames"] == ["Products-staging", "Users-staging"]
    assert prod.list_tables()["TableNames"] == ["Products-prod", "Users-prod"]
    assert aws.client("dynamodb").list_tables()["TableNames"] == []  # the credentials' own account: untouched
    products = prod.describe_table(TableName="Products-prod")["Table"]
    assert products["ProvisionedThroughput"]["ReadCapacityUnits"] == 20  # prod's patch
    tags = {t["Key"]: t["Value"] for t in prod.list_tags_of_resource(ResourceArn=products["TableArn"])["Tags"]}
    assert tags["reconciler:env"] == "prod" and products["TableArn"].split(":")[4] == PROD
    nodes = {account: as_account(aws, account, "elasticache").describe_replication_groups()["ReplicationGroups"][0]
             for account in (STAGING, PROD)}
    assert nodes[STAGING]["CacheNodeType"] == "cache.t3.micro" and nodes[PROD]["CacheNodeType"] == "cache.t3.small"


def test_a_wrong_account_stops_before_any_call_but_the_identity_check(cli, aws, repo):
    document = repo / "envs" / "prod" / "environment.yaml"
    document.write_text(re.sub(r"\n    roleArn: .*", "", document.read_text()))  # the credentials as they are
    refused = run(cli, repo, "plan", "envs/prod")
    assert refused.code == 1
    assert ("environment 'prod' is account 222222222222, but the credentials reach account 123456789012"
            in refused.err), refused.err
    assert "Traceback" not in refused.err
    assert [(r["service"], r["operation"]) for r in aws.requests()] == [("sts", "GetCallerIdentity")]
    # the same with the role the environment names, given as CI gives a read-only role: the account is checked
    aws.reset_requests()
    other = run(cli, repo, "plan", "--role-arn", "arn:aws:iam::333333333333:role/plan", "envs/staging")
    assert other.code == 1 and "is account 111111111111, but the credentials reach account 333333333333" in other.err
    assert sorted((r["service"], r["operation"]) for r in aws.requests()) == [
        ("sts", "AssumeRole"), ("sts", "GetCallerIdentity")]


@pytest.mark.slow
def test_two_environments_in_one_account_never_take_each_others_resources(cli, aws, repo):
    for name in ("staging", "prod"):  # both in the sandbox's own account, no role
        document = repo / "envs" / name / "environment.yaml"
        text = re.sub(r"\n    roleArn: .*", "", document.read_text())
        document.write_text(re.sub(r'accountId: "\d+"', 'accountId: "123456789012"', text))
    env = {**aws.env, "REDIS_AUTH_TOKEN": TOKEN}
    assert run(cli, repo, "run", "--once", "--no-lease", "envs/staging", env=env).code == 0
    prod = run(cli, repo, "plan", "envs/prod", env=env)
    # staging's distribution has the same spec name (website) but another environment's tag: not prod's, not
    # an orphan of prod's
    assert "Distribution/website will be created" in prod.out and "Unmanaged" not in prod.out, prod.out
    assert run(cli, repo, "run", "--once", "envs/prod", env=env).code == 0  # applies under its lease
    staging = run(cli, repo, "plan", "--detailed-exitcode", "envs/staging", env=env)
    assert staging.code == 0 and "Unmanaged" not in staging.out, staging.out
    # the agents' lease carries the environment
    dynamodb = boto3.client("dynamodb", endpoint_url=aws.sandbox.endpoint, region_name="eu-west-1",
                            aws_access_key_id="sandbox", aws_secret_access_key="sandbox")
    leases = dynamodb.scan(TableName="reconciler-lease")["Items"]
    assert [item["LeaseName"]["S"] for item in leases] == ["reconciler-prod"], leases
    # export as prod's agent sees the account: its own resources, not staging's
    exported = cli("export", "-o", str(repo / "out"), str(repo / "envs" / "prod"), env=env)
    assert exported.code == 0, exported.err
    assert sorted(p.name for p in (repo / "out").iterdir()) == [
        "bucket-example-site-bucket-prod.yaml", "cachecluster-app-cache-prod.yaml", "distribution-website.yaml",
        "table-Products-prod.yaml", "table-Users-prod.yaml"]
    assert "managed by reconciler for environment 'staging'; not exported here" in exported.err
    assert "adopt: true" not in (repo / "out" / "table-Users-prod.yaml").read_text()  # prod's own


def test_the_plan_as_a_pull_request_comment(cli, aws, repo):
    env = {**aws.env, "REDIS_AUTH_TOKEN": TOKEN}
    shown = run(cli, repo, "plan", "--format", "markdown", "envs/prod", env=env)
    assert shown.code == 0, shown.err
    text = shown.out
    assert text.startswith("### reconciler plan: environment `prod` (")
    assert "**Plan: 5 to add, 0 to adopt, 0 to change, 0 to replace, 0 to destroy.**" in text
    sections = re.findall(r"<details><summary>(.*?)</summary>", text)
    assert len(sections) == 5 and all("will be created" in s for s in sections), sections
    assert "<code>CacheCluster/app-cache-prod</code>" in text
    assert "+ spec.authToken = (sensitive value)" in text and TOKEN not in text
    assert "| # | Step | AWS usually takes | Waits for |" in text and ", typical (AWS) |" in text
    assert text.count("<details>") == text.count("</details>")


@pytest.mark.slow
def test_changed_since_plans_only_the_environments_whose_files_changed(cli, aws, repo):
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout

    git("init", "-q", "-b", "main")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "empty")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "the stack")
    env = {**aws.env, "REDIS_AUTH_TOKEN": TOKEN}

    def planned(since: str) -> list[str]:
        result = run(cli, repo, "plan", "--json", "--changed-since", since, "envs", env=env)
        assert result.code == 0, result.out + result.err
        answer = result.json
        return sorted(p["environment"]["name"] for p in (answer if isinstance(answer, list) else [answer]))

    assert planned("HEAD") == []
    assert "No environment's files changed since HEAD" in run(cli, repo, "plan", "--changed-since", "HEAD", "envs",
                                                               env=env).out
    assert planned("HEAD~1") == ["prod", "staging"]  # everything is new since the empty commit
    prod = repo / "envs" / "prod" / "environment.yaml"
    prod.write_text(prod.read_text().replace("read: 20", "read: 30"))
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qam", "prod: more reads")
    assert planned("HEAD~1") == ["prod"]
    (repo / "site" / "index.html").write_text("<h1>new</h1>\n")  # not committed yet: published by both
    assert planned("HEAD") == ["prod", "staging"]
    git("checkout", "-q", "--", "site")
    (repo / "specs" / "site.yaml").unlink()  # a base file removed: both
    assert planned("HEAD") == ["prod", "staging"]
    bad = run(cli, repo, "plan", "--changed-since", "no-such-rev", "envs", env=env)
    assert bad.code == 1 and "--changed-since no-such-rev: git rev-parse failed" in bad.err


def test_writeback_edits_the_file_that_states_each_value(cli, aws, repo):
    env = {**aws.env, "REDIS_AUTH_TOKEN": TOKEN}
    assert run(cli, repo, "apply", "--auto-approve", "envs/prod", env=env).code == 0
    dynamodb = as_account(aws, PROD, "dynamodb")
    dynamodb.update_table(TableName="Products-prod", ProvisionedThroughput={"ReadCapacityUnits": 25,
                                                                           "WriteCapacityUnits": 10})
    arn = dynamodb.describe_table(TableName="Users-prod")["Table"]["TableArn"]
    dynamodb.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "platform"}])
    base_before = (repo / "specs" / "tables.yaml").read_text()
    written = run(cli, repo, "writeback", "envs/prod", env=env)
    assert written.code == 0, written.out + written.err
    assert "wrote Table/Products-prod spec.capacity in repo/envs/prod/environment.yaml, patch 2" in written.out
    shared = "wrote Table/Users-prod spec.tags.team in repo/specs/tables.yaml (the environments' shared base)"
    assert shared in written.out
    assert "patch: {capacity: {read: 25, write: 10}}" in (repo / "envs" / "prod" / "environment.yaml").read_text()
    base_after = (repo / "specs" / "tables.yaml").read_text()
    assert base_after.count("team: platform") == 1 and base_after.count("team: web") == base_before.count(
        "team: web") - 1
    assert "name: Users${suffix:=}" in base_after  # the placeholder stays
    assert run(cli, repo, "plan", "--detailed-exitcode", "envs/prod", env=env).code == 0


def test_the_role_is_refreshed_before_it_expires(aws, monkeypatch):
    for key, value in aws.env.items():
        monkeypatch.setenv(key, value)
    handle = AwsHandle(region="eu-west-1")
    # 15 minutes, AWS's shortest: inside botocore's advisory refresh window (15 minutes before expiry) at once
    handle.assume_role(f"arn:aws:iam::{PROD}:role/reconciler", "refresh-test", duration_s=900)
    first = handle.session.get_credentials().get_frozen_credentials().access_key
    second = handle.session.get_credentials().get_frozen_credentials().access_key
    assert first != second  # fetched again before expiry, with no call of ours
    assert handle.identity()["Arn"] == f"arn:aws:sts::{PROD}:assumed-role/reconciler/refresh-test"
    assumed = [r for r in aws.requests() if r["operation"] == "AssumeRole"]
    assert assumed and assumed[0]["count"] >= 2, assumed


def test_json_plan_names_its_environment(cli, aws, repo):
    env = {**aws.env, "REDIS_AUTH_TOKEN": TOKEN}
    document = run(cli, repo, "plan", "--json", "envs/staging", env=env).json
    assert document["environment"] == {"name": "staging", "file": "repo/envs/staging/environment.yaml",
                                       "region": "eu-west-1", "accountId": STAGING,
                                       "roleArn": f"arn:aws:iam::{STAGING}:role/reconciler"}
    assert json.dumps(document).count("-prod") == 0


def test_the_agent_follows_an_environment_in_git(cli, aws, repo, tmp_path):
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "stack"],
                 ["push", "-q", str(origin), "main"]):
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                       check=True, capture_output=True)
    env = {**aws.env, "REDIS_AUTH_TOKEN": TOKEN, "RECONCILER_STATE_DIR": str(tmp_path / "state")}
    done = cli("run", "--once", "--git-url", f"file://{origin}", "envs/staging", env=env)
    assert done.code == 0, done.err
    tables = sorted(as_account(aws, STAGING, "dynamodb").list_tables()["TableNames"])
    assert tables == ["Products-staging", "Users-staging", "reconciler-lease"]  # its lease lives in its account
    assert '"observe.error"' not in done.err  # the site's directory is found in the clone
    assert '"event": "environment.reached"' in done.err and "assumed-role/reconciler/reconciler-staging" in done.err


def test_writeback_of_a_value_edits_the_environments_values(cli, aws, tmp_path):
    base, env_dir = tmp_path / "specs", tmp_path / "envs" / "prod"
    base.mkdir()
    env_dir.mkdir(parents=True)
    (base / "t.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Table\nmetadata: {name: Orders}\nspec:\n"
        "  partitionKey: {name: Id, type: S}\n  billingMode: PROVISIONED\n"
        "  capacity: {read: \"${reads}\", write: 5}   # reads: the environment's\n")
    (env_dir / "environment.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Environment\nmetadata: {name: prod}\n"
        "spec:\n  base: [../../specs]\n  values:\n    reads: 20   # production's\n")
    assert cli("apply", "--auto-approve", str(env_dir)).code == 0
    aws.client("dynamodb").update_table(TableName="Orders", ProvisionedThroughput={"ReadCapacityUnits": 30,
                                                                                  "WriteCapacityUnits": 5})
    written = cli("writeback", str(env_dir))
    assert written.code == 0, written.out + written.err
    assert "envs/prod/environment.yaml, value reads" in written.out
    assert (env_dir / "environment.yaml").read_text().endswith("    reads: 30   # production's\n")
    assert '"${reads}"' in (base / "t.yaml").read_text()  # the base keeps its placeholder
    assert cli("plan", "--detailed-exitcode", str(env_dir)).code == 0
