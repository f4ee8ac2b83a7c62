"""`reconciler export`: a stack built by hand becomes specs whose first plan is adoption only."""

from __future__ import annotations

import json

import yaml

TOKEN = "handmade-token-0123456789"


def build_by_hand(aws) -> dict[str, str]:
    """The stack as a console user builds it: no ownership tags, console naming."""
    ddb, s3, cf = aws.client("dynamodb"), aws.client("s3"), aws.client("cloudfront")
    ec, ec2 = aws.client("elasticache"), aws.client("ec2")
    ddb.create_table(
        TableName="Users", BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        KeySchema=[{"AttributeName": "UserId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "UserId", "AttributeType": "S"},
                              {"AttributeName": "Role", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "ByRole", "KeySchema": [{"AttributeName": "Role", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"},
                                 "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}}],
        Tags=[{"Key": "team", "Value": "web"}])
    ddb.update_continuous_backups(TableName="Users",
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    ddb.put_item(TableName="Users", Item={"UserId": {"S": "u-1"}, "Role": {"S": "Admin"}, "Score": {"N": "0.5"}})
    ddb.create_table(TableName="Products", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "ProductId", "KeyType": "HASH"},
                                {"AttributeName": "Version", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "ProductId", "AttributeType": "S"},
                                           {"AttributeName": "Version", "AttributeType": "N"}])
    s3.create_bucket(Bucket="handmade-site")
    s3.put_public_access_block(Bucket="handmade-site", PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_tagging(Bucket="handmade-site", Tagging={"TagSet": [{"Key": "team", "Value": "web"}]})
    oac = cf.create_origin_access_control(OriginAccessControlConfig={
        "Name": "handmade-site.s3.us-east-1.amazonaws.com", "SigningProtocol": "sigv4",
        "SigningBehavior": "always", "OriginAccessControlOriginType": "s3"})["OriginAccessControl"]["Id"]
    origin = {"Id": "handmade-site", "DomainName": "handmade-site.s3.us-east-1.amazonaws.com",
              "S3OriginConfig": {"OriginAccessIdentity": ""}, "OriginAccessControlId": oac}
    dist = cf.create_distribution(DistributionConfig={
        "CallerReference": "console-1", "Comment": "Marketing site", "Enabled": True,
        "DefaultRootObject": "index.html", "Origins": {"Quantity": 1, "Items": [origin]},
        "DefaultCacheBehavior": {"TargetOriginId": "handmade-site", "ViewerProtocolPolicy": "redirect-to-https",
                                 "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6"}})["Distribution"]
    s3.put_bucket_policy(Bucket="handmade-site", Policy=json.dumps({
        "Version": "2008-10-17", "Id": "PolicyForCloudFrontPrivateContent",
        "Statement": [{"Sid": "AllowCloudFrontServicePrincipal", "Effect": "Allow",
                       "Principal": {"Service": "cloudfront.amazonaws.com"}, "Action": "s3:GetObject",
                       "Resource": "arn:aws:s3:::handmade-site/*",
                       "Condition": {"StringEquals": {"AWS:SourceArn": dist["ARN"]}}}]}))
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    found = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    subnets = [s["SubnetId"] for s in found][:2]
    bastion = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["bastion"]}])["SecurityGroups"][0]
    sg = ec2.create_security_group(GroupName="redis-sg", Description="redis", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "UserIdGroupPairs": [{"GroupId": bastion["GroupId"]}]}])
    ec.create_cache_subnet_group(CacheSubnetGroupName="redis-subnets", CacheSubnetGroupDescription="d",
                                 SubnetIds=subnets)
    ec.create_replication_group(ReplicationGroupId="app-cache", ReplicationGroupDescription="cache", Engine="redis",
                                EngineVersion="7.1", CacheNodeType="cache.t3.small", NumCacheClusters=2,
                                CacheSubnetGroupName="redis-subnets", SecurityGroupIds=[sg],
                                TransitEncryptionEnabled=True, AuthToken=TOKEN,
                                Tags=[{"Key": "team", "Value": "web"}])
    return {"users": ddb.describe_table(TableName="Users")["Table"]["TableArn"], "dist": dist["Id"],
            "cache": ec.describe_replication_groups(ReplicationGroupId="app-cache")["ReplicationGroups"][0]["ARN"],
            "sg": sg, "oac": oac}


def test_export_then_adopt_only_then_clean(cli, aws, tmp_path):
    ids = build_by_hand(aws)
    env = {**aws.env, "REDIS_AUTH_TOKEN": TOKEN}
    aws.reset_requests()
    out = tmp_path / "exported"
    exported = cli("export", "-o", str(out), env=env)
    assert exported.code == 0, exported.out + exported.err
    assert aws.writes() == []  # export is read-only, counted at the server
    files = sorted(p.name for p in out.glob("*.yaml"))
    assert files == ["bucket-handmade-site.yaml", "cachecluster-app-cache.yaml", "distribution-marketing-site.yaml",
                     "table-Products.yaml", "table-Users.yaml"]
    users = yaml.safe_load((out / "table-Users.yaml").read_text())
    assert users["metadata"] == {"name": "Users", "adopt": True, "deletion": "retain"}
    assert users["spec"] == {
        "partitionKey": {"name": "UserId", "type": "S"}, "billingMode": "PROVISIONED",
        "capacity": {"read": 5, "write": 5},
        "globalSecondaryIndexes": [{"name": "ByRole", "partitionKey": {"name": "Role", "type": "S"}}],
        "pointInTimeRecovery": True, "tags": {"team": "web"}}
    dist = yaml.safe_load((out / "distribution-marketing-site.yaml").read_text())
    assert dist["metadata"]["externalId"] == ids["dist"]
    assert dist["spec"]["origin"] == {"bucket": "handmade-site",
                                      "originAccessControl": "handmade-site.s3.us-east-1.amazonaws.com"}
    cache_text = (out / "cachecluster-app-cache.yaml").read_text()
    assert TOKEN not in cache_text and TOKEN not in exported.out + exported.err
    assert "# the AUTH token is never exported: set REDIS_AUTH_TOKEN" in cache_text
    cache = yaml.safe_load(cache_text)
    assert cache["spec"]["allowFrom"] == [{"securityGroupName": "bastion"}]
    assert cache["spec"]["securityGroup"] == "redis-sg" and cache["spec"]["replicas"] == 1
    assert '"S"' not in (out / "table-Users.yaml").read_text()  # plain values, never AttributeValue JSON

    assert cli("validate", str(out), env=env).code == 0
    plan = cli("plan", "--json", str(out), env=env)
    assert plan.code == 0, plan.out + plan.err
    for change in plan.json["changes"]:
        assert change["action"] == "adopt", change
        assert {f["path"] for f in change["fields"]} == {"spec.tags.managed-by", "spec.tags.reconciler:name"}, change
    applied = cli("apply", "--auto-approve", str(out), env=env)
    assert applied.code == 0, applied.out + applied.err
    assert "5 adopted" in applied.out
    assert cli("plan", "--detailed-exitcode", str(out), env=env).code == 0

    ddb, cf, ec = aws.client("dynamodb"), aws.client("cloudfront"), aws.client("elasticache")
    assert ddb.describe_table(TableName="Users")["Table"]["TableArn"] == ids["users"]
    assert ddb.get_item(TableName="Users", Key={"UserId": {"S": "u-1"}})["Item"]["Score"] == {"N": "0.5"}
    assert [d["Id"] for d in cf.list_distributions()["DistributionList"]["Items"]] == [ids["dist"]]
    [origin] = cf.get_distribution_config(Id=ids["dist"])["DistributionConfig"]["Origins"]["Items"]
    assert origin["OriginAccessControlId"] == ids["oac"]
    assert ec.describe_replication_groups()["ReplicationGroups"][0]["ARN"] == ids["cache"]
    assert len(aws.client("ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["reconciler-app-cache"]}])["SecurityGroups"]) == 0


def test_export_items_only_when_asked_with_a_limit(cli, aws, tmp_path):
    ddb = aws.client("dynamodb")
    ddb.create_table(TableName="Colours", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "S"}])
    for i in range(5):
        ddb.put_item(TableName="Colours", Item={"Id": {"S": f"c{i}"}, "Hex": {"S": f"#00000{i}"}, "W": {"N": "1.25"}})
    plain = cli("export", "--kind", "Table", "-o", str(tmp_path / "a"))
    assert "items" not in yaml.safe_load((tmp_path / "a" / "table-Colours.yaml").read_text())["spec"]
    limited = cli("export", "--kind", "Table", "--with-items", "--item-limit", "3", "-o", str(tmp_path / "b"))
    assert plain.code == limited.code == 0
    spec = yaml.safe_load((tmp_path / "b" / "table-Colours.yaml").read_text())["spec"]
    assert len(spec["items"]) == 3 and spec["items"][0]["W"] == 1.25
    assert "more than 3 items" in limited.err
    [change] = cli("plan", "--json", str(tmp_path / "b")).json["changes"]
    assert change["action"] == "adopt"  # the items exported are equal to the live ones
    assert {f["path"] for f in change["fields"]} == {"spec.tags.managed-by", "spec.tags.reconciler:name"}


def test_unknown_kind_is_a_clear_error(cli, aws, tmp_path):
    result = cli("export", "--kind", "Queue", "-o", str(tmp_path / "x"))
    assert result.code == 1 and "'Queue' is not one of" in result.err
