"""What AWS refuses, refused before it is sent: for each rule, a spec that breaks it is refused by `plan` at its file,
line and field with AWS's words and AWS's error code, having made no request at all; and the same request sent with
boto3 is answered by the sandbox with AWS's error code (moto alone would take it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError

KEYS = [{"AttributeName": "Id", "KeyType": "HASH"}]
DEFS = [{"AttributeName": "Id", "AttributeType": "S"}]
TABLE = ("apiVersion: reconciler/v1\nkind: Table\nmetadata: {{name: {name}}}\n"
         "spec:\n  partitionKey: {{name: {key}, type: S}}\n")


@dataclass
class Rule:
    """One of AWS's rules: the spec that breaks it, what plan says (and where), and the request AWS refuses."""

    id: str
    spec: str
    said: tuple[str, ...]          # in plan's error: the field, AWS's code, the words
    request: tuple[str, str, dict[str, Any]] | None  # (service, method, args) sent with boto3
    code: str


def _table(name: str = "Orders", key: str = "Id", extra: str = "") -> str:
    return TABLE.format(name=name, key=key) + extra


def _many_tags(n: int) -> str:
    return "  tags: {" + ", ".join(f"k{i}: v" for i in range(n)) + "}\n"


RULES = [
    Rule("dynamodb.item-size", _table(extra="  items:\n    - {Id: big, Blob: '" + "x" * 410_000 + "'}\n"),
         ("spec.items[0]", "ValidationException", "DynamoDB takes items up to 400 KB"),
         ("dynamodb", "put_item", {"TableName": "Existing",
                                   "Item": {"Id": {"S": "big"}, "Blob": {"S": "x" * 410_000}}}),
         "ValidationException"),
    Rule("dynamodb.empty-key", _table(extra="  items:\n    - {Id: '', Name: nobody}\n"),
         ("spec.items[0]", "ValidationException", "key attribute 'Id' is empty"),
         ("dynamodb", "put_item", {"TableName": "Existing", "Item": {"Id": {"S": ""}}}), "ValidationException"),
    Rule("dynamodb.table-name", _table(name="ab"),
         ("metadata.name", "ValidationException", "DynamoDB takes 3 to 255 characters"),
         ("dynamodb", "create_table", {"TableName": "ab", "BillingMode": "PAY_PER_REQUEST", "KeySchema": KEYS,
                                       "AttributeDefinitions": DEFS}), "ValidationException"),
    Rule("dynamodb.index-name", _table(extra="  globalSecondaryIndexes:\n    - {name: 'by role', partitionKey: {name: "
                                             "Role, type: S}}\n"),
         ("spec.globalSecondaryIndexes[0].name", "ValidationException", "index name 'by role'"),
         ("dynamodb", "create_table", {"TableName": "Orders", "BillingMode": "PAY_PER_REQUEST", "KeySchema": KEYS,
                                       "AttributeDefinitions": [*DEFS, {"AttributeName": "Role", "AttributeType": "S"}],
                                       "GlobalSecondaryIndexes": [{"IndexName": "by role", "KeySchema": [
                                           {"AttributeName": "Role", "KeyType": "HASH"}],
                                           "Projection": {"ProjectionType": "ALL"}}]}), "ValidationException"),
    Rule("dynamodb.projected-attributes (botocore's model)", _table(
        extra="  globalSecondaryIndexes:\n    - {name: ByRole, partitionKey: {name: Role, type: S}, "
              "projection: INCLUDE, nonKeyAttributes: [" + ", ".join(f"a{i}" for i in range(21)) + "]}\n"),
         ("spec", "AWS refuses DynamoDB CreateTable", "Member must have length less than or equal to 20"),
         ("dynamodb", "create_table", {"TableName": "Orders", "BillingMode": "PAY_PER_REQUEST", "KeySchema": KEYS,
                                       "AttributeDefinitions": [*DEFS, {"AttributeName": "Role", "AttributeType": "S"}],
                                       "GlobalSecondaryIndexes": [{"IndexName": "ByRole", "KeySchema": [
                                           {"AttributeName": "Role", "KeyType": "HASH"}], "Projection": {
                                           "ProjectionType": "INCLUDE",
                                           "NonKeyAttributes": [f"a{i}" for i in range(21)]}}]}),
         "ValidationException"),
    Rule("dynamodb.tag-characters", _table(extra="  tags: {team: 'web,app'}\n"),
         ("spec.tags", "ValidationException", "',' not allowed"),
         ("dynamodb", "create_table", {"TableName": "Orders", "BillingMode": "PAY_PER_REQUEST", "KeySchema": KEYS,
                                       "AttributeDefinitions": DEFS, "Tags": [{"Key": "team", "Value": "web,app"}]}),
         "ValidationException"),
    Rule("dynamodb.tag-count (the agent's two ownership tags count)", _table(extra=_many_tags(49)),
         ("spec.tags", "ValidationException", "51 tags: dynamodb takes at most 50"),
         ("dynamodb", "create_table", {"TableName": "Orders", "BillingMode": "PAY_PER_REQUEST", "KeySchema": KEYS,
                                       "AttributeDefinitions": DEFS,
                                       "Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(51)]}),
         "ValidationException"),
    Rule("dynamodb.reserved-prefix", _table(extra="  tags: {'AWS:Owner': me}\n"),
         ("spec.tags", "ValidationException", "the prefix aws: is reserved"),
         ("dynamodb", "create_table", {"TableName": "Orders", "BillingMode": "PAY_PER_REQUEST", "KeySchema": KEYS,
                                       "AttributeDefinitions": DEFS, "Tags": [{"Key": "AWS:Owner", "Value": "me"}]}),
         "ValidationException"),
    Rule("s3.bucket-name", "apiVersion: reconciler/v1\nkind: Bucket\nmetadata: {name: xn--site}\n",
         ("metadata.name", "InvalidBucketName", "must not start with the prefix xn--"),
         ("s3", "create_bucket", {"Bucket": "xn--site"}), "InvalidBucketName"),
    Rule("s3.tag-characters", "apiVersion: reconciler/v1\nkind: Bucket\nmetadata: {name: my-site}\n"
                              "spec: {tags: {team: 'web,app'}}\n",
         ("spec.tags", "InvalidTag", "',' not allowed; s3 takes"),
         ("s3", "put_bucket_tagging", {"Bucket": "existing-bucket", "Tagging": {"TagSet": [
             {"Key": "team", "Value": "web,app"}]}}), "InvalidTag"),
    Rule("cloudfront.tag-characters", "apiVersion: reconciler/v1\nkind: Bucket\nmetadata: {name: my-site}\n---\n"
                                      "apiVersion: reconciler/v1\nkind: Distribution\nmetadata: {name: website}\n"
                                      "spec: {origin: {bucket: my-site}, tags: {'cost;centre': '42'}}\n",
         ("spec.tags", "InvalidTagging", "';' not allowed; cloudfront takes"),
         ("cloudfront", "tag_resource", {"Resource": "arn:aws:cloudfront::123456789012:distribution/EXISTING",
                                         "Tags": {"Items": [{"Key": "cost;centre", "Value": "42"}]}}),
         "InvalidTagging"),
    Rule("elasticache.group-id", "apiVersion: reconciler/v1\nkind: CacheCluster\nmetadata: {name: app--cache}\n"
                                 "spec: {allowFrom: [{securityGroupName: bastion}]}\n",
         ("metadata.name", "InvalidParameterValue", "contain two consecutive hyphens"),
         ("elasticache", "create_replication_group", {"ReplicationGroupId": "app--cache",
                                                      "ReplicationGroupDescription": "x", "Engine": "redis",
                                                      "CacheNodeType": "cache.t3.micro", "NumCacheClusters": 1}),
         "InvalidParameterValue"),
    Rule("elasticache.tag-count", "apiVersion: reconciler/v1\nkind: CacheCluster\nmetadata: {name: app-cache}\n"
                                  "spec:\n  allowFrom: [{securityGroupName: bastion}]\n" + _many_tags(49),
         ("spec.tags", "TagQuotaPerResourceExceeded", "elasticache takes at most 50"),
         ("elasticache", "create_replication_group", {"ReplicationGroupId": "app-cache",
                                                      "ReplicationGroupDescription": "x", "Engine": "redis",
                                                      "CacheNodeType": "cache.t3.micro", "NumCacheClusters": 1,
                                                      "Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(51)]}),
         "TagQuotaPerResourceExceeded"),
]


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_plan_refuses_with_aws_words_and_sends_nothing(rule, cli, specs, aws):
    root = specs("stack.yaml", rule.spec)
    aws.reset_requests()
    done = cli("plan", str(root))
    assert done.code == 1, done.out + done.err
    problem = next((line for line in done.err.splitlines() if rule.said[0] in line and rule.said[1] in line), None)
    assert problem is not None, done.err
    assert all(said in problem for said in rule.said), problem
    assert "stack.yaml:" in problem  # the file and line
    assert aws.requests() == []  # nothing sent: refused with the specs


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_the_sandbox_answers_the_same_request_with_aws_code(rule, aws):
    ddb, s3 = aws.client("dynamodb"), aws.client("s3")
    ddb.create_table(TableName="Existing", BillingMode="PAY_PER_REQUEST", KeySchema=KEYS, AttributeDefinitions=DEFS)
    s3.create_bucket(Bucket="existing-bucket")
    assert rule.request is not None
    service, method, args = rule.request
    with pytest.raises(ClientError) as refused:
        getattr(aws.client(service), method)(**args)
    assert refused.value.response["Error"]["Code"] == rule.code


def test_the_sandbox_refuses_malformed_bucket_policies(aws):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="policy-bucket")
    for document in ("", "Allow everything", '{"Version": "2012-10-17"}', '{"Version": "2012-10-17", "Statement": []}'):
        with pytest.raises(ClientError) as refused:
            s3.put_bucket_policy(Bucket="policy-bucket", Policy=document)
        assert refused.value.response["Error"]["Code"] == "MalformedPolicy", document
    assert aws.errors() == {"s3:PutBucketPolicy:MalformedPolicy": 4}


def test_the_policy_the_agent_builds_is_one_s3_takes(cli, example_specs, aws):
    """The bucket policy a distribution's apply writes passes S3's rules (the sandbox would refuse it otherwise)."""
    done = cli("apply", "--auto-approve", str(example_specs), env={**aws.env, "REDIS_AUTH_TOKEN": "a-token-0123456789"})
    assert done.code == 0, done.err
    policy = json.loads(aws.client("s3").get_bucket_policy(Bucket="example-site-bucket")["Policy"])
    assert policy["Statement"][0]["Condition"]["StringEquals"]["AWS:SourceArn"].startswith("arn:aws:cloudfront::")
    assert not aws.errors()


def test_a_new_bucket_blocks_public_access_and_takes_tags_at_creation(aws):
    """S3's defaults since April 2023 (Block Public Access on, ACLs disabled), and CreateBucket's own tags."""
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="new-bucket", CreateBucketConfiguration={"Tags": [{"Key": "team", "Value": "web"}]})
    block = s3.get_public_access_block(Bucket="new-bucket")["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                     "RestrictPublicBuckets": True}
    ownership = s3.get_bucket_ownership_controls(Bucket="new-bucket")["OwnershipControls"]["Rules"]
    assert ownership == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert s3.get_bucket_tagging(Bucket="new-bucket")["TagSet"] == [{"Key": "team", "Value": "web"}]
    with pytest.raises(ClientError) as refused:  # a public policy, refused while BlockPublicPolicy is on
        s3.put_bucket_policy(Bucket="new-bucket", Policy=json.dumps({"Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::new-bucket/*"}]}))
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_the_agent_tags_a_bucket_in_its_create_call(cli, specs, aws):
    root = specs("b.yaml", "apiVersion: reconciler/v1\nkind: Bucket\nmetadata: {name: tagged-site}\n"
                           "spec: {tags: {team: web}}\n")
    assert cli("apply", "--auto-approve", str(root)).code == 0
    assert "s3:PutBucketTagging" not in aws.writes()  # the tags went with CreateBucket
    tags = {t["Key"]: t["Value"] for t in aws.client("s3").get_bucket_tagging(Bucket="tagged-site")["TagSet"]}
    assert tags == {"team": "web", "managed-by": "reconciler", "reconciler:name": "tagged-site"}


def test_the_sandbox_checks_botocore_model_constraints(aws):
    """A constraint botocore's model states and the client does not check (a maximum, a pattern): AWS refuses it."""
    with pytest.raises(ClientError) as refused:
        aws.client("dynamodb").create_table(TableName="Orders", BillingMode="PAY_PER_REQUEST", KeySchema=KEYS,
                                            AttributeDefinitions=DEFS,
                                            Tags=[{"Key": "team", "Value": "v" * 257}])
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as refused:  # the model: at most 20 replication groups a request
        aws.client("elasticache").describe_update_actions(ReplicationGroupIds=[f"group-{i}" for i in range(21)])
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "Member must have length less than or equal to 20" in refused.value.response["Error"]["Message"]
