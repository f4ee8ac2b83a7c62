"""The sandbox: its fidelity fixes, its request log, and the commands that start it."""

from __future__ import annotations

import os
import subprocess
import time

import botocore.exceptions
import pytest

from tests.conftest import reconciler_command
from tests.specs import table


def make_table(ddb, name: str = "Tbl") -> None:
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "S"}])


def test_fidelity_one_online_index_change_per_update_table(aws):
    ddb = aws.client("dynamodb")
    make_table(ddb)
    two = [{"Create": {"IndexName": f"Index{i}", "KeySchema": [{"AttributeName": f"A{i}", "KeyType": "HASH"}],
                       "Projection": {"ProjectionType": "ALL"}}} for i in range(2)]
    defs = [{"AttributeName": f"A{i}", "AttributeType": "S"} for i in range(2)]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        ddb.update_table(TableName="Tbl", AttributeDefinitions=defs, GlobalSecondaryIndexUpdates=two)
    assert info.value.response["Error"]["Code"] == "LimitExceededException"
    assert ddb.describe_table(TableName="Tbl")["Table"].get("GlobalSecondaryIndexes", []) == []
    ddb.update_table(TableName="Tbl", AttributeDefinitions=defs[:1], GlobalSecondaryIndexUpdates=two[:1])
    assert len(ddb.describe_table(TableName="Tbl")["Table"]["GlobalSecondaryIndexes"]) == 1


def test_fidelity_tagging_an_existing_key_overwrites_it(aws):
    ddb = aws.client("dynamodb")
    make_table(ddb)
    arn = ddb.describe_table(TableName="Tbl")["Table"]["TableArn"]
    for value in ("web", "hijacked", "web"):
        ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": value}, {"Key": "tier", "Value": value}])
    assert sorted((t["Key"], t["Value"]) for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]) == [
        ("team", "web"), ("tier", "web")]


def test_request_log_counts_by_service_and_operation(aws):
    ddb = aws.client("dynamodb")
    make_table(ddb)
    ddb.describe_table(TableName="Tbl")
    ddb.describe_table(TableName="Tbl")
    counts = {(r["service"], r["operation"]): (r["count"], r["read"]) for r in aws.requests()}
    assert counts == {("dynamodb", "CreateTable"): (1, False), ("dynamodb", "DescribeTable"): (2, True)}
    aws.reset_requests()
    assert aws.requests() == []


def test_sandbox_command_serves_until_stopped(aws, tmp_path):
    env = {k: v for k, v in aws.env.items() if k != "AWS_ENDPOINT_URL"}
    proc = subprocess.Popen([*reconciler_command(), "sandbox", "--port", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert "not a real account" in first
        endpoint = first.split(" on ", 1)[1].split(" ", 1)[0]
        spec = tmp_path / "t.yaml"
        spec.write_text(table("Served"))
        done = subprocess.run([*reconciler_command(), "apply", "--auto-approve", str(spec)],
                              env={**env, "AWS_ENDPOINT_URL": endpoint}, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_sandbox_flag_says_so_and_ignores_the_real_account(tmp_path):
    spec = tmp_path / "t.yaml"
    spec.write_text(table("Boxed"))
    # A real-looking configuration that must not be used.
    env = {**os.environ, "AWS_PROFILE": "production", "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9"}
    started = time.monotonic()
    result = subprocess.run([*reconciler_command(), "plan", "--sandbox", str(spec)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "SANDBOX" in result.stderr and "No real AWS account is touched" in result.stderr
    assert "Table/Boxed will be created" in result.stdout
    assert time.monotonic() - started < 60


def test_service_endpoint_override_is_honoured(aws, cli, specs):
    root = specs("t.yaml", table("Routed"))
    env = {k: v for k, v in aws.env.items() if k != "AWS_ENDPOINT_URL"}
    env["AWS_ENDPOINT_URL_DYNAMODB"] = aws.sandbox.endpoint
    assert cli("apply", "--auto-approve", str(root), env=env).code == 0
    assert "Routed" in aws.client("dynamodb").list_tables()["TableNames"]


def test_unreachable_endpoint_names_the_resource_and_call(aws, cli, specs):
    root = specs("t.yaml", table("Lost"))
    env = {**aws.env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}
    result = cli("plan", str(root), env=env)
    assert result.code == 1
    assert "Table/Lost" in result.out and "DescribeTable failed: cannot reach the AWS endpoint" in result.out
    assert "Traceback" not in result.out + result.err


def test_no_credentials_is_a_clear_error(tmp_path):
    spec = tmp_path / "t.yaml"
    spec.write_text(table("Nocreds"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
               AWS_EC2_METADATA_DISABLED="true", AWS_REGION="us-east-1")
    result = subprocess.run([*reconciler_command(), "plan", str(spec)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "no AWS credentials found" in result.stderr and "--sandbox" in result.stderr
    assert "Traceback" not in result.stderr



def _distribution(cf, oac_id: str = "") -> tuple[str, str]:
    origin = {"Id": "s3", "DomainName": "b.s3.us-east-1.amazonaws.com",
              "S3OriginConfig": {"OriginAccessIdentity": ""}, "OriginAccessControlId": oac_id}
    config = {"CallerReference": "ref-1", "Comment": "", "Enabled": True,
              "Origins": {"Quantity": 1, "Items": [origin]},
              "DefaultCacheBehavior": {"TargetOriginId": "s3", "ViewerProtocolPolicy": "https-only",
                                       "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6"}}
    dist = cf.create_distribution(DistributionConfig=config)
    return dist["Distribution"]["Id"], dist["ETag"]


def test_fidelity_origins_keep_their_origin_access_control(aws):
    cf = aws.client("cloudfront")
    oac = cf.create_origin_access_control(OriginAccessControlConfig={
        "Name": "o", "SigningProtocol": "sigv4", "SigningBehavior": "always",
        "OriginAccessControlOriginType": "s3"})["OriginAccessControl"]["Id"]
    dist_id, _ = _distribution(cf, oac)
    [origin] = cf.get_distribution_config(Id=dist_id)["DistributionConfig"]["Origins"]["Items"]
    assert origin["OriginAccessControlId"] == oac
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}


def test_fidelity_stale_etag_is_refused_and_updates_redeploy(aws):
    cf = aws.client("cloudfront")
    dist_id, _etag = _distribution(cf)
    answer = cf.get_distribution_config(Id=dist_id)
    config = answer["DistributionConfig"]
    aws.set_time("aws")
    new = cf.update_distribution(Id=dist_id, IfMatch=answer["ETag"], DistributionConfig=config)
    assert new["ETag"] != answer["ETag"]
    assert new["Distribution"]["Status"] == "InProgress"
    with pytest.raises(botocore.exceptions.ClientError) as info:
        cf.update_distribution(Id=dist_id, IfMatch=answer["ETag"], DistributionConfig=config)
    assert info.value.response["Error"]["Code"] == "PreconditionFailed"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412


def test_fidelity_enabled_distribution_cannot_be_deleted(aws):
    cf = aws.client("cloudfront")
    dist_id, _ = _distribution(cf)
    etag = cf.get_distribution_config(Id=dist_id)["ETag"]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        cf.delete_distribution(Id=dist_id, IfMatch=etag)
    assert info.value.response["Error"]["Code"] == "DistributionNotDisabled"


def test_fidelity_invalidation_caller_reference_is_deduplicated(aws):
    cf = aws.client("cloudfront")
    dist_id, _ = _distribution(cf)

    def invalidate(paths: list[str]) -> str:
        return cf.create_invalidation(DistributionId=dist_id, InvalidationBatch={
            "Paths": {"Quantity": len(paths), "Items": paths}, "CallerReference": "same"})["Invalidation"]["Id"]

    first = invalidate(["/index.html"])
    assert invalidate(["/index.html"]) == first
    assert cf.list_invalidations(DistributionId=dist_id)["InvalidationList"]["Quantity"] == 1
    with pytest.raises(botocore.exceptions.ClientError) as info:
        invalidate(["/other.html"])
    assert info.value.response["Error"]["Code"] == "InvalidationBatchAlreadyExists"


def test_unknown_profile_is_a_clear_error(tmp_path):
    spec = tmp_path / "t.yaml"
    spec.write_text(table("Prof"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    result = subprocess.run([*reconciler_command(), "plan", "--profile", "nope", str(spec)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "nope" in result.stderr and "--profile" in result.stderr and "internal error" not in result.stderr


def test_aws_region_alone_is_enough(aws, cli, specs):
    """AWS_REGION is what the SDKs and the AWS CLI read; botocore alone would ignore it."""
    root = specs("t.yaml", table("Regional"))
    env = {k: v for k, v in aws.env.items() if k != "AWS_DEFAULT_REGION"}
    assert env["AWS_REGION"] == "us-east-1"
    result = cli("plan", str(root), env=env)
    assert result.code == 0, result.err
