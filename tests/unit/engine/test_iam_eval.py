"""The IAM evaluation of tests/iam_eval.py can fail: each rule it applies denies a call a looser check lets by."""

from __future__ import annotations

from reconciler.engine.iam import CREATED_OWNED, OWNED, policy
from tests.iam_eval import actions_of_call, evaluate, parliament

UPDATE = {"service": "cloudfront", "operation": "UpdateDistribution", "region": "us-east-1",
          "params": {"Id": "E1ABC", "IfMatch": "x", "DistributionConfig": {}}}
DIST = "arn:aws:cloudfront::123456789012:distribution/E1ABC"


def _document(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _allow(action: str, resource: str, condition: dict | None = None) -> dict:
    out = {"Effect": "Allow", "Action": [action], "Resource": resource}
    return {**out, "Condition": condition} if condition else out


def test_a_tag_condition_is_evaluated_against_the_resource_s_tags():
    document = _document(_allow("cloudfront:UpdateDistribution", "arn:aws:cloudfront::*:distribution/*", OWNED))
    assert evaluate([UPDATE], document, lambda arn: {"managed-by": "reconciler"} if arn == DIST else {}).denied == []
    [denied] = evaluate([UPDATE], document, lambda arn: {"managed-by": "someone"}).denied
    assert (denied.action, denied.resource) == ("cloudfront:UpdateDistribution", DIST)


def test_a_resource_outside_the_statement_is_denied():
    call = {"service": "dynamodb", "operation": "DeleteTable", "region": "eu-west-1", "params": {"TableName": "Users"}}
    assert evaluate([call], _document(_allow("dynamodb:DeleteTable", "arn:aws:dynamodb:*:*:table/Users"))).denied == []
    [denied] = evaluate([call], _document(_allow("dynamodb:DeleteTable", "arn:aws:dynamodb:*:*:table/Orders"))).denied
    assert denied.resource == "arn:aws:dynamodb:eu-west-1:123456789012:table/Users"


def test_a_create_with_tags_needs_the_tagging_action_too():
    call = {"service": "cloudfront", "operation": "CreateDistributionWithTags", "region": "us-east-1",
            "params": {"DistributionConfigWithTags": {"Tags": {"Items": [{"Key": "managed-by",
                                                                          "Value": "reconciler"}]}}}}
    assert actions_of_call("cloudfront", "CreateDistributionWithTags") == (
        "cloudfront:CreateDistribution", "cloudfront:TagResource")
    create_only = _document(_allow("cloudfront:CreateDistribution", "*", CREATED_OWNED))
    assert [r.action for r in evaluate([call], create_only).denied] == ["cloudfront:TagResource"]
    group = {"service": "ec2", "operation": "CreateSecurityGroup", "region": "us-east-1",
             "params": {"GroupName": "g", "Description": "d", "VpcId": "vpc-1",
                        "TagSpecifications": [{"ResourceType": "security-group",
                                               "Tags": [{"Key": "managed-by", "Value": "reconciler"}]}]}}
    document = _document(_allow("ec2:CreateSecurityGroup", "*"))
    assert "ec2:CreateTags" in {r.action for r in evaluate([group], document).denied}  # AWS's dependent action


def test_an_action_aws_scopes_by_resource_is_not_granted_by_a_statement_for_another_type():
    call = {"service": "cloudfront", "operation": "DeleteOriginAccessControl", "region": "us-east-1",
            "params": {"Id": "OAC1", "IfMatch": "x"}}
    wrong = _document(_allow("cloudfront:DeleteOriginAccessControl", "arn:aws:cloudfront::*:distribution/*"))
    assert len(evaluate([call], wrong).denied) == 1
    right = _document(_allow("cloudfront:DeleteOriginAccessControl", "arn:aws:cloudfront::*:origin-access-control/*"))
    assert evaluate([call], right).denied == []


def test_parliament_finds_what_the_agent_s_policy_no_longer_has():
    loose = _document({"Sid": "Loose", **_allow("cloudfront:DeleteOriginAccessControl", "*")})
    assert any("RESOURCE_STAR" in finding for finding in parliament(loose))
    assert parliament(policy()) == []
