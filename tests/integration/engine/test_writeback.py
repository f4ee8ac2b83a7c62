"""`reconciler writeback`: drift becomes the spec's value, and nothing else in the file changes (issue 15)."""

from __future__ import annotations

import difflib

# Comments on and after the lines that drift, flow and block maps, a second document in the same file,
# odd quoting and spacing, a file without a final newline: all of it must come through byte for byte.
USERS = """\
# The users table. Keep this header.
apiVersion: reconciler/v1
kind: Table
metadata: { name: Users, policy: observe }   # a flow map, spaced
spec:
  partitionKey: {name: UserId, type: S}
  billingMode: PROVISIONED
  capacity:            # the table's throughput
    read: 5            # reads: drifts
    write: 5
  globalSecondaryIndexes:
    - name: ByEmail      # the index
      partitionKey: {name: Email, type: S}
      projection: ALL

  tags: {team: 'web', cost-center: "42"}   # tags: team drifts

---
# A second document: untouched.
apiVersion:   reconciler/v1
kind: Table
metadata:
  name: Products
spec:
  partitionKey:
    name: Sku
    type: S
  tags:
    owner: shop   # stays
"""


def _apply(cli, root) -> None:
    result = cli("apply", "--auto-approve", str(root))
    assert result.code == 0, result.out + result.err


def test_the_file_changes_exactly_in_the_drifted_values(cli, specs, aws):
    root = specs("stack.yaml", USERS.replace("policy: observe", "policy: enforce"))
    _apply(cli, root)
    specs("stack.yaml", USERS)
    ddb = aws.client("dynamodb")
    # the console at 3 a.m.: more read capacity for the table and its index, a tag changed
    ddb.update_table(TableName="Users", ProvisionedThroughput={"ReadCapacityUnits": 20, "WriteCapacityUnits": 5})
    aws.finish_transitions()
    ddb.update_table(TableName="Users", GlobalSecondaryIndexUpdates=[{"Update": {
        "IndexName": "ByEmail", "ProvisionedThroughput": {"ReadCapacityUnits": 8, "WriteCapacityUnits": 5}}}])
    aws.finish_transitions()
    arn = ddb.describe_table(TableName="Users")["Table"]["TableArn"]
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "platform"}])
    original = (root / "stack.yaml").read_text()

    dry = cli("writeback", "--dry-run", str(root))
    assert dry.code == 0, dry.err
    assert (root / "stack.yaml").read_text() == original  # --dry-run writes nothing
    assert "+    read: 20            # reads: drifts" in dry.out and "Dry run: 3 field(s)" in dry.out

    result = cli("writeback", str(root))
    assert result.code == 0, result.err
    new = (root / "stack.yaml").read_text()
    _same_except(original, new, {
        "    read: 5            # reads: drifts": "    read: 20            # reads: drifts",
        "      projection: ALL": "      projection: ALL\n      capacity: {read: 8, write: 5}",
        "  tags: {team: 'web', cost-center: \"42\"}   # tags: team drifts":
            "  tags: {team: 'platform', cost-center: \"42\"}   # tags: team drifts",
    })
    assert cli("validate", str(root)).code == 0
    plan = cli("plan", "--detailed-exitcode", str(root))
    assert plan.code == 0, plan.out  # clean: the spec now says what is live


def _same_except(old: str, new: str, replacements: dict[str, str]) -> bool:
    expected = old
    for before, after in replacements.items():
        assert expected.count(before) == 1, before
        expected = expected.replace(before, after)
    assert new == expected, "".join(difflib.unified_diff(expected.splitlines(True), new.splitlines(True)))
    return True


def test_a_tag_added_or_removed_in_the_console_and_other_documents_untouched(cli, specs, aws):
    text = USERS.replace("policy: observe", "policy: enforce").rstrip("\n")  # no final newline either
    root = specs("stack.yaml", text)
    (root / "stack.yaml").write_text(text)
    _apply(cli, root)
    ddb = aws.client("dynamodb")
    arn = ddb.describe_table(TableName="Products")["Table"]["TableArn"]
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "tier", "Value": "gold"}])
    arn_users = ddb.describe_table(TableName="Users")["Table"]["TableArn"]
    ddb.untag_resource(ResourceArn=arn_users, TagKeys=["cost-center"])
    result = cli("writeback", str(root))
    assert result.code == 0, result.err
    new = (root / "stack.yaml").read_text()
    _same_except(text, new, {
        "    owner: shop   # stays": "    owner: shop   # stays\n    tier: gold",
        "  tags: {team: 'web', cost-center: \"42\"}   # tags: team drifts":
            "  tags: {team: 'web'}   # tags: team drifts",
    })
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0


def test_a_secret_is_never_written_and_a_replacement_needs_the_flag(cli, specs, aws):
    table = ("apiVersion: reconciler/v1\nkind: Table\nmetadata: {name: Keys, adopt: true}\n"
             "spec:\n  partitionKey: {name: Id, type: S}  # the key\n  tags: {team: web}\n")
    aws.client("dynamodb").create_table(  # built by hand with another key
        TableName="Keys", KeySchema=[{"AttributeName": "KeyId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "KeyId", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        Tags=[{"Key": "team", "Value": "web"}])
    root = specs("keys.yaml", table)
    result = cli("writeback", str(root))
    assert "skipped Table/Keys spec.partitionKey: the spec's value forces replacement; pass --allow-replacement" \
        in result.err
    assert (root / "keys.yaml").read_text() == table
    result = cli("writeback", "--allow-replacement", str(root))
    assert result.code == 0, result.err
    assert (root / "keys.yaml").read_text() == table.replace("{name: Id, type: S}", "{name: KeyId, type: S}")


CACHE = """\
apiVersion: reconciler/v1
kind: CacheCluster
metadata: {name: app-cache}
spec:
  nodeType: cache.t3.micro   # the size
  allowFrom: [{securityGroupName: bastion}]
  authToken: {fromEnv: REDIS_AUTH_TOKEN}
"""


def test_a_secret_is_skipped_with_a_note_and_never_written(cli, specs, aws):
    first, rotated = "first-token-0123456789", "second-token-9876543210"
    root = specs("cache.yaml", CACHE)
    result = cli("apply", "--auto-approve", str(root), env={**aws.env, "REDIS_AUTH_TOKEN": first})
    assert result.code == 0, result.out + result.err
    aws.finish_transitions()
    aws.client("elasticache").modify_replication_group(ReplicationGroupId="app-cache", CacheNodeType="cache.t3.small",
                                                       ApplyImmediately=True)
    aws.finish_transitions()
    result = cli("writeback", str(root), env={**aws.env, "REDIS_AUTH_TOKEN": rotated})  # the token drifts too
    assert result.code == 0, result.err
    assert "skipped CacheCluster/app-cache spec.authToken: a secret: never written to a spec" in result.err
    text = (root / "cache.yaml").read_text()
    assert text == CACHE.replace("cache.t3.micro ", "cache.t3.small ")
    assert first not in result.out + result.err + text and rotated not in result.out + result.err + text


ITEMS = """\
apiVersion: reconciler/v1
kind: Table
metadata: {name: Flags, policy: observe}
spec:
  partitionKey: {name: Id, type: S}
  ttl: {attribute: ExpiresAt}
  items:
    - {Id: dark-mode, Enabled: true, Colours: !!set {red}}   # a flag
"""


def test_items_and_settings_changed_in_the_console_are_written_and_what_cannot_be_said_is_reported(
        cli, specs, aws):
    root = specs("flags.yaml", ITEMS.replace("policy: observe", "policy: enforce"))
    _apply(cli, root)
    specs("flags.yaml", ITEMS)
    ddb = aws.client("dynamodb")
    ddb.put_item(TableName="Flags", Item={"Id": {"S": "dark-mode"}, "Enabled": {"BOOL": False},
                                          "Colours": {"SS": ["red", "blue"]}, "Blob": {"B": b"\x00\xff"}})
    ddb.update_time_to_live(TableName="Flags", TimeToLiveSpecification={"Enabled": False, "AttributeName": "ExpiresAt"})
    aws.finish_transitions()
    result = cli("writeback", str(root))
    assert result.code == 0, result.err
    _same_except(ITEMS, (root / "flags.yaml").read_text(), {
        "ttl: {attribute: ExpiresAt}": "ttl: {attribute: ExpiresAt, enabled: false}",
        "{Id: dark-mode, Enabled: true, Colours: !!set {red}}":
            "{Id: dark-mode, Enabled: false, Colours: !!set {blue, red}, Blob: !!binary AP8=}",
    })
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0

    # on-demand in the console: a PROVISIONED spec cannot say "no capacity"; reported, nothing guessed
    ddb.update_table(TableName="Flags", BillingMode="PROVISIONED",
                     ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1})
    aws.finish_transitions()
    provisioned = (root / "flags.yaml").read_text().replace(
        "  ttl:", "  billingMode: PROVISIONED\n  capacity: {read: 1, write: 1}\n  ttl:")
    specs("flags.yaml", provisioned)
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0
    ddb.update_table(TableName="Flags", BillingMode="PAY_PER_REQUEST")
    aws.finish_transitions()
    result = cli("writeback", str(root))
    assert (root / "flags.yaml").read_text() == provisioned
    assert result.code == 0 and "No drift to write back." in result.out
    assert ("skipped Table/Flags spec.billingMode: the live value does not pass validation: capacity applies "
            "only to billingMode: PROVISIONED") in result.err
    assert "skipped Table/Flags spec.capacity: the spec cannot state this live value" in result.err


def test_a_table_aws_is_still_updating_is_written_back_once_it_has_settled(cli, specs, aws):
    """At AWS's time: while the console's throughput change is UPDATING, the values are not settled. Then
    the table's capacity is written, and the index that inherited it keeps its own."""
    text = USERS.split("---")[0]
    root = specs("users.yaml", text.replace("policy: observe", "policy: enforce"))
    _apply(cli, root)
    specs("users.yaml", text)
    aws.set_time(0.05)  # a throughput change takes a minute on AWS: 3 s here
    aws.client("dynamodb").update_table(TableName="Users", ProvisionedThroughput={
        "ReadCapacityUnits": 20, "WriteCapacityUnits": 5})
    result = cli("writeback", str(root))
    assert "skipped Table/Users spec.capacity: AWS is still changing it (table UPDATING)" in result.err
    assert (root / "users.yaml").read_text() == text
    aws.finish_transitions()
    result = cli("writeback", str(root))
    assert result.code == 0, result.err
    # the index inherited the table's capacity: it keeps its own (live) value, now stated, so plan stays clean
    assert (root / "users.yaml").read_text() == text.replace("read: 5 ", "read: 20 ").replace(
        "      projection: ALL\n", "      projection: ALL\n      capacity: {read: 5, write: 5}\n"), result.out
    assert cli("plan", "--detailed-exitcode", str(root)).code == 0
