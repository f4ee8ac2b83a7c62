"""Tables end to end: the CLI as a subprocess against a moto server over HTTP."""

from __future__ import annotations

import json

import pytest

USERS = """\
apiVersion: reconciler/v1
kind: Table
metadata: {name: Users}
spec:
  partitionKey: {name: UserId, type: S}
  billingMode: PROVISIONED
  capacity: {read: 5, write: 5}
  globalSecondaryIndexes:
    - {name: ByRole, partitionKey: {name: Role, type: S}, projection: ALL}
  pointInTimeRecovery: true
  deletionProtection: true
  ttl: {attribute: ExpiresAt}
  tags: {team: web}
  items:
    - {UserId: u-101, Name: Alice, Role: Admin, Score: 0.1, Prefs: {theme: dark, langs: [en, fr]}}
    - {UserId: u-102, Name: Bob, Role: Editor}
"""


def changed_paths(plan: dict) -> dict[tuple[str, str], set[str]]:
    return {(c["kind"], c["name"]): {f["path"] for f in c["fields"]}
            for c in plan["changes"] if c["action"] != "noop"}


def test_create_then_clean_then_drift_corrected(cli, specs, aws):
    root = specs("users.yaml", USERS)
    assert cli("validate", str(root)).code == 0

    first = cli("plan", "--json", "--detailed-exitcode", str(root))
    assert first.code == 2, first.err
    assert [c["action"] for c in first.json["changes"]] == ["create"]

    applied = cli("apply", "--auto-approve", str(root))
    assert applied.code == 0, applied.out + applied.err
    assert "Apply complete!" in applied.out

    clean = cli("plan", "--json", "--detailed-exitcode", str(root))
    assert clean.code == 0, clean.out
    assert clean.json["summary"]["noop"] == 1

    ddb = aws.client("dynamodb")
    arn = ddb.describe_table(TableName="Users")["Table"]["TableArn"]
    # drift, the way someone in the console would cause it
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "ops"}, {"Key": "extra", "Value": "x"}])
    ddb.update_continuous_backups(TableName="Users", PointInTimeRecoverySpecification={
        "PointInTimeRecoveryEnabled": False})
    ddb.update_time_to_live(TableName="Users", TimeToLiveSpecification={
        "AttributeName": "ExpiresAt", "Enabled": False})
    ddb.update_table(TableName="Users", ProvisionedThroughput={"ReadCapacityUnits": 9, "WriteCapacityUnits": 5})
    ddb.delete_item(TableName="Users", Key={"UserId": {"S": "u-102"}})
    ddb.update_item(TableName="Users", Key={"UserId": {"S": "u-101"}},
                    UpdateExpression="SET #n = :n", ExpressionAttributeNames={"#n": "Name"},
                    ExpressionAttributeValues={":n": {"S": "Mallory"}})
    ddb.update_table(TableName="Users", GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "ByRole"}}])
    ddb.put_item(TableName="Users", Item={"UserId": {"S": "app-user"}, "Name": {"S": "Carol"}})

    drift = cli("plan", "--json", "--detailed-exitcode", str(root))
    assert drift.code == 2
    [change] = drift.json["changes"]
    assert change["action"] == "update"
    assert changed_paths(drift.json)[("Table", "Users")] == {
        "spec.tags.team", "spec.tags.extra", "spec.pointInTimeRecovery", "spec.ttl",
        "spec.capacity", "spec.items[UserId=u-101].Name", "spec.items[UserId=u-102]",
        "spec.globalSecondaryIndexes[ByRole]",
    }

    fixed = cli("apply", "--auto-approve", str(root))
    assert fixed.code == 0, fixed.out + fixed.err
    again = cli("plan", "--json", "--detailed-exitcode", str(root))
    assert again.code == 0, again.out

    table = ddb.describe_table(TableName="Users")["Table"]
    assert [g["IndexName"] for g in table["GlobalSecondaryIndexes"]] == ["ByRole"]
    alice = ddb.get_item(TableName="Users", Key={"UserId": {"S": "u-101"}})["Item"]
    assert alice["Name"] == {"S": "Alice"} and alice["Score"] == {"N": "0.1"}
    assert alice["Prefs"]["M"]["langs"] == {"L": [{"S": "en"}, {"S": "fr"}]}
    # the application's own item is never touched
    assert ddb.get_item(TableName="Users", Key={"UserId": {"S": "app-user"}})["Item"]["Name"] == {"S": "Carol"}


def test_plan_makes_no_write_call(cli, specs, aws):
    root = specs("users.yaml", USERS)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    aws.client("dynamodb").delete_item(TableName="Users", Key={"UserId": {"S": "u-101"}})
    aws.reset_requests()
    assert cli("plan", str(root)).code == 0
    reads = {r["operation"] for r in aws.requests()}
    assert {"DescribeTable", "GetResources", "BatchGetItem"} <= reads  # tags: from the one bulk listing
    assert aws.writes() == []


def test_broken_file_among_good_ones_stops_everything(cli, specs, aws):
    specs("users.yaml", USERS)
    root = specs("broken.yaml", """\
        apiVersion: reconciler/v1
        kind: Table
        metadata: {name: Orders}
        spec:
          partitionKey: {name: OrderId, type: Q}
        """)
    for command in (["plan"], ["apply", "--auto-approve"]):
        result = cli(*command, str(root))
        assert result.code == 1, command
        assert "broken.yaml:5 spec.partitionKey.type: 'Q' is not one of S, N, B" in result.err
        assert "Traceback" not in result.err
    daemon = cli("run", "--once", str(root))  # the agent logs JSON events instead
    assert daemon.code == 1 and "Traceback" not in daemon.err
    events = [json.loads(line) for line in daemon.err.splitlines()]
    assert {"event": "specs.invalid", "file": "specs/broken.yaml", "line": 5,
            "field": "spec.partitionKey.type"}.items() <= events[0].items()
    assert aws.requests() == []  # not one AWS call, let alone a write


def test_key_change_is_refused_without_opt_in_then_replaces_with_it(cli, specs, aws):
    root = specs("users.yaml", USERS)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    ddb = aws.client("dynamodb")
    arn = ddb.describe_table(TableName="Users")["Table"]["TableArn"]
    created = ddb.describe_table(TableName="Users")["Table"]["CreationDateTime"]

    specs("users.yaml", USERS.replace("{name: UserId, type: S}", "{name: UserId, type: N}")
          .replace("UserId: u-101", "UserId: 101").replace("UserId: u-102", "UserId: 102"))
    plan = cli("plan", "--json", str(root))
    [change] = plan.json["changes"]
    assert change["action"] == "replace"
    assert "allowReplacement" in change["refused"]
    assert {"path": "spec.partitionKey", "before": {"name": "UserId", "type": "S"},
            "after": {"name": "UserId", "type": "N"}, "forcesReplacement": True} in change["fields"]

    aws.reset_requests()
    refused = cli("apply", "--auto-approve", str(root))
    assert refused.code == 1 and "refused" in refused.out
    assert aws.writes() == []
    table = ddb.describe_table(TableName="Users")["Table"]
    assert table["TableArn"] == arn and table["CreationDateTime"] == created

    specs("users.yaml", USERS.replace("{name: Users}", "{name: Users, allowReplacement: true}")
          .replace("{name: UserId, type: S}", "{name: UserId, type: N}")
          .replace("UserId: u-101", "UserId: 101").replace("UserId: u-102", "UserId: 102"))
    replaced = cli("apply", "--auto-approve", str(root))
    assert replaced.code == 0, replaced.out + replaced.err
    key = ddb.describe_table(TableName="Users")["Table"]["AttributeDefinitions"]
    assert {"AttributeName": "UserId", "AttributeType": "N"} in key
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0


def hand_made_table(aws) -> str:
    ddb = aws.client("dynamodb")
    ddb.create_table(TableName="Legacy", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "S"}],
                     Tags=[{"Key": "team", "Value": "web"}])
    ddb.put_item(TableName="Legacy", Item={"Id": {"S": "row-1"}, "Data": {"S": "precious"}})
    return ddb.describe_table(TableName="Legacy")["Table"]["TableArn"]


LEGACY = """\
apiVersion: reconciler/v1
kind: Table
metadata: {name: Legacy%s}
spec:
  partitionKey: {name: Id, type: S}
  pointInTimeRecovery: true
  tags: {team: web}
"""


def test_hand_made_table_is_refused_then_adopted(cli, specs, aws):
    arn = hand_made_table(aws)
    root = specs("legacy.yaml", LEGACY % "")
    aws.reset_requests()
    refused = cli("plan", "--json", "--detailed-exitcode", str(root))
    assert refused.code == 1
    [change] = refused.json["changes"]
    assert change["action"] == "error" and "metadata.adopt: true" in change["error"]
    assert cli("apply", "--auto-approve", str(root)).code == 1
    assert aws.writes() == []

    specs("legacy.yaml", LEGACY % ", adopt: true")
    planned = cli("plan", "--json", str(root))
    [change] = planned.json["changes"]
    assert change["action"] == "adopt"
    assert {f["path"] for f in change["fields"]} == {
        "spec.tags.managed-by", "spec.tags.reconciler:name", "spec.pointInTimeRecovery"}
    adopted = cli("apply", "--auto-approve", str(root))
    assert adopted.code == 0, adopted.out + adopted.err
    assert "1 adopted" in adopted.out
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0

    ddb = aws.client("dynamodb")
    assert ddb.describe_table(TableName="Legacy")["Table"]["TableArn"] == arn
    item = ddb.get_item(TableName="Legacy", Key={"Id": {"S": "row-1"}})["Item"]
    assert item["Data"] == {"S": "precious"}
    assert {"Key": "managed-by", "Value": "reconciler"} in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]


def test_removing_a_spec_never_deletes_and_tombstone_needs_permission(cli, specs, aws):
    root = specs("users.yaml", USERS)
    specs("other.yaml", LEGACY.replace("Legacy%s", "Other"))
    assert cli("apply", "--auto-approve", str(root)).code == 0
    (root / "users.yaml").unlink()
    assert cli("apply", "--auto-approve", str(root)).code == 0
    ddb = aws.client("dynamodb")
    assert "Users" in ddb.list_tables()["TableNames"]

    specs("users.yaml", USERS.replace("{name: Users}", "{name: Users, state: absent}"))
    retained = cli("plan", "--json", str(root))
    [change] = [c for c in retained.json["changes"] if c["name"] == "Users"]
    assert change["action"] == "delete" and "deletion: delete" in change["refused"]
    assert cli("apply", "--auto-approve", str(root)).code == 1
    assert "Users" in ddb.list_tables()["TableNames"]

    specs("users.yaml", USERS.replace("{name: Users}", "{name: Users, state: absent, deletion: delete}"))
    deleted = cli("apply", "--auto-approve", str(root))
    assert deleted.code == 0, deleted.out + deleted.err
    assert "Users" not in ddb.list_tables()["TableNames"]  # deletion protection was lifted first
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0


def test_observe_policy_reports_drift_without_correcting_it(cli, specs, aws):
    root = specs("users.yaml", USERS.replace("{name: Users}", "{name: Users, policy: observe}"))
    specs("other.yaml", LEGACY.replace("Legacy%s", "Other"))
    hand = aws.client("dynamodb")
    assert cli("apply", "--auto-approve", str(root)).code == 0
    assert "Users" not in hand.list_tables()["TableNames"]  # observe: not even created
    plan = cli("plan", "--json", "--detailed-exitcode", str(root))
    assert plan.code == 2
    [users] = [c for c in plan.json["changes"] if c["name"] == "Users"]
    assert users["action"] == "create" and users["policy"] == "observe"


def test_ignored_fields_are_shown_but_not_corrected(cli, specs, aws):
    root = specs("users.yaml", USERS.replace("{name: Users}", "{name: Users, ignore: [spec.tags.team]}"))
    assert cli("apply", "--auto-approve", str(root)).code == 0
    ddb = aws.client("dynamodb")
    arn = ddb.describe_table(TableName="Users")["Table"]["TableArn"]
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "finance"}])
    plan = cli("plan", "--json", "--detailed-exitcode", str(root))
    assert plan.code == 0
    [change] = plan.json["changes"]
    assert change["action"] == "noop"
    assert change["fields"] == [{"path": "spec.tags.team", "before": "finance", "after": "web", "ignored": True}]
    assert "(ignored: metadata.ignore)" in cli("plan", str(root)).out
    assert cli("apply", "--auto-approve", str(root)).code == 0
    tags = {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}
    assert tags["team"] == "finance"


@pytest.mark.parametrize("count", [2, 3])
def test_several_new_indexes_are_created_one_call_at_a_time(cli, specs, aws, count):
    root = specs("users.yaml", USERS)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    extra = "".join(f"    - {{name: ByAttr{i}, partitionKey: {{name: Attr{i}, type: S}}, projection: KEYS_ONLY}}\n"
                    for i in range(count))
    specs("users.yaml", USERS.replace("  pointInTimeRecovery", extra + "  pointInTimeRecovery"))
    result = cli("apply", "--auto-approve", str(root))
    assert result.code == 0, result.out + result.err
    table = aws.client("dynamodb").describe_table(TableName="Users")["Table"]
    assert len(table["GlobalSecondaryIndexes"]) == count + 1
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0


def test_billing_mode_switch_and_capacity(cli, specs, aws):
    on_demand = USERS.replace("  billingMode: PROVISIONED\n  capacity: {read: 5, write: 5}\n",
                              "  billingMode: PAY_PER_REQUEST\n")
    root = specs("users.yaml", on_demand)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    specs("users.yaml", USERS)
    plan = cli("plan", "--json", str(root))
    assert {"spec.billingMode", "spec.capacity"} <= changed_paths(plan.json)[("Table", "Users")]
    result = cli("apply", "--auto-approve", str(root))
    assert result.code == 0, result.out + result.err
    table = aws.client("dynamodb").describe_table(TableName="Users")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert table["ProvisionedThroughput"]["ReadCapacityUnits"] == 5
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0


def test_aws_reserved_tags_are_never_diffed_removed_or_written(cli, specs, aws):
    """A table CloudFormation built carries aws:cloudformation:* tags, which AWS refuses to remove: adopting
    it plans only the ownership tags (and the spec's own), and leaves AWS's alone."""
    ddb = aws.client("dynamodb")
    ddb.create_table(TableName="Users", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "UserId", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "UserId", "AttributeType": "S"}],
                     Tags=[{"Key": "team", "Value": "web"}])
    # AWS's own tags, as CloudFormation puts them on what it builds (no caller may: the sandbox refuses aws: keys)
    from moto.dynamodb.models import dynamodb_backends

    dynamodb_backends["123456789012"]["us-east-1"].tag_resource(
        ddb.describe_table(TableName="Users")["Table"]["TableArn"],
        {"aws:cloudformation:stack-name": "web", "aws:cloudformation:logical-id": "UsersTable"})
    root = specs("t.yaml", """
        apiVersion: reconciler/v1
        kind: Table
        metadata: {name: Users, adopt: true}
        spec:
          partitionKey: {name: UserId, type: S}
          tags: {team: web}
    """)
    plan = cli("plan", "--json", str(root))
    [change] = plan.json["changes"]
    assert change["action"] == "adopt"
    assert {f["path"] for f in change["fields"]} == {"spec.tags.managed-by", "spec.tags.reconciler:name"}
    assert cli("apply", "--auto-approve", str(root)).code == 0
    arn = ddb.describe_table(TableName="Users")["Table"]["TableArn"]
    tags = {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}
    assert tags["aws:cloudformation:stack-name"] == "web" and tags["aws:cloudformation:logical-id"] == "UsersTable"
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0


def test_key_schema_change_with_declared_items_plans_replace(cli, specs, aws):
    """The items are read by the spec's key; with another live key that read cannot work (AWS:
    ValidationException). The plan says replace, as for any key change, not an error."""
    table = """
        apiVersion: reconciler/v1
        kind: Table
        metadata: {name: Users}
        spec:
          partitionKey: {name: UserId, type: S}
          items:
            - {UserId: u-1, Email: a@example.com}
    """
    root = specs("t.yaml", table)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    specs("t.yaml", table.replace("{name: UserId, type: S}", "{name: Email, type: S}"))
    plan = cli("plan", "--json", str(root))
    [change] = plan.json["changes"]
    assert change["action"] == "replace" and "error" not in change, change
    assert "allowReplacement" in change["refused"]
    assert [f["path"] for f in change["fields"] if f.get("forcesReplacement")] == ["spec.partitionKey"]
