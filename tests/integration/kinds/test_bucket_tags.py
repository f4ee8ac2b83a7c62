"""A bucket CloudFormation built carries aws:cloudformation:* tags. S3's PutBucketTagging replaces the whole tag set,
and AWS refuses one that leaves out (or changes) its own tags: "You can't edit or delete tag keys or values that
begin with the aws: prefix" (AWS General Reference, "Tagging AWS resources"); the answer is InvalidTag "System Tags
cannot be removed by requester" (observed: cloud-custodian#2834, terraform-provider-aws#7323). So the agent sends
them back unchanged with every tag change, and never plans to remove them, as for tables
(tests/integration/kinds/test_table_apply.py)."""

from __future__ import annotations

import botocore.exceptions
import pytest

SYSTEM = {"aws:cloudformation:stack-name": "web", "aws:cloudformation:logical-id": "SiteBucket"}


def bucket_built_by_cloudformation(aws, name: str) -> None:
    """The bucket with the tags CloudFormation gives it (they cannot be set through the API: AWS's own)."""
    from moto.s3.models import s3_backends

    aws.client("s3").create_bucket(Bucket=name)
    backend = s3_backends["123456789012"]["aws"]
    bucket = backend.get_bucket(name)
    backend.tagger.tag_resource(bucket.arn, [{"Key": k, "Value": v} for k, v in {**SYSTEM, "team": "web"}.items()])


def tags(aws, name: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in aws.client("s3").get_bucket_tagging(Bucket=name)["TagSet"]}


def test_the_sandbox_refuses_a_tag_set_without_aws_own_tags(aws):
    bucket_built_by_cloudformation(aws, "cfn-site")
    s3 = aws.client("s3")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        s3.put_bucket_tagging(Bucket="cfn-site", Tagging={"TagSet": [{"Key": "team", "Value": "platform"}]})
    assert info.value.response["Error"] == {"Code": "InvalidTag",
                                            "Message": "System Tags cannot be removed by requester"}
    with pytest.raises(botocore.exceptions.ClientError) as info:  # nor add or change one
        s3.put_bucket_tagging(Bucket="cfn-site", Tagging={"TagSet": [
            {"Key": k, "Value": "other" if k.endswith("stack-name") else v} for k, v in SYSTEM.items()]})
    assert info.value.response["Error"]["Code"] == "InvalidTag"
    # the whole set, AWS's own unchanged: taken
    s3.put_bucket_tagging(Bucket="cfn-site", Tagging={"TagSet": [
        *({"Key": k, "Value": v} for k, v in SYSTEM.items()), {"Key": "team", "Value": "platform"}]})
    assert tags(aws, "cfn-site") == {**SYSTEM, "team": "platform"}


def test_adopting_and_retagging_a_bucket_keeps_aws_own_tags(cli, specs, aws):
    bucket_built_by_cloudformation(aws, "cfn-site")
    spec = """
        apiVersion: reconciler/v1
        kind: Bucket
        metadata: {name: cfn-site, adopt: true}
        spec:
          blockPublicAccess: true
          tags: {team: TEAM}
    """
    root = specs("b.yaml", spec.replace("TEAM", "web"))
    [change] = cli("plan", "--json", str(root)).json["changes"]
    assert change["action"] == "adopt"
    assert {f["path"] for f in change["fields"] if f["path"].startswith("spec.tags.")} == {
        "spec.tags.managed-by", "spec.tags.reconciler:name"}  # AWS's own tags: never planned away
    assert cli("apply", "--auto-approve", str(root)).code == 0
    assert tags(aws, "cfn-site") == {**SYSTEM, "team": "web", "managed-by": "reconciler", "reconciler:name": "cfn-site"}
    specs("b.yaml", spec.replace("TEAM", "platform"))
    applied = cli("apply", "--auto-approve", str(root))
    assert applied.code == 0, applied.out + applied.err
    assert tags(aws, "cfn-site")["team"] == "platform" and {k: tags(aws, "cfn-site")[k] for k in SYSTEM} == SYSTEM
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0
    assert aws.errors() == {}  # no PutBucketTagging was refused on the way
