"""The smaller defects a new user's trial found (issue 13, item 9), each as the user met it."""

from __future__ import annotations

from tests.specs import table

TABLE = table("Orders")


def test_a_missing_api_version_says_so(cli, specs):
    result = cli("validate", str(specs("a.yaml", TABLE.replace("apiVersion: reconciler/v1\n", ""))))
    assert result.code == 1
    assert "a.yaml:1 apiVersion: missing; every document starts with apiVersion: reconciler/v1" in result.err
    assert "None" not in result.err


def test_a_duplicate_name_points_at_both_names(cli, specs):
    second = "apiVersion: reconciler/v1\nkind: Table\nmetadata:\n  policy: enforce\n  name: Orders\nspec: {}\n"
    specs("a.yaml", "# the orders\n\n" + TABLE.replace("metadata: {name: Orders}", "metadata:\n  name: Orders"))
    second = second.replace("spec: {}", "spec: {partitionKey: {name: Id, type: S}}")
    result = cli("validate", str(specs("b.yaml", second)))
    expected = "b.yaml:5 metadata.name: duplicate Table 'Orders' (first defined at specs/a.yaml:6)"
    assert expected in result.err, result.err


def test_a_distribution_cannot_stay_on_a_tombstoned_bucket(cli, specs):
    text = ("apiVersion: reconciler/v1\nkind: Bucket\nmetadata: {name: site-b, state: absent, deletion: delete}\n"
            "---\napiVersion: reconciler/v1\nkind: Distribution\nmetadata: {name: web}\n"
            "spec: {origin: {bucket: site-b}}\n")
    result = cli("validate", str(specs("s.yaml", text)))
    assert result.code == 1 and "s.yaml:8 spec.origin.bucket: the Bucket 'site-b' is tombstoned" in result.err
    both = text.replace("metadata: {name: web}", "metadata: {name: web, state: absent, deletion: delete}")
    assert cli("validate", str(specs("s.yaml", both))).code == 0


def test_refused_changes_are_counted_as_refused_not_failed(cli, specs, aws):
    root = specs("t.yaml", TABLE)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    specs("t.yaml", TABLE.replace("name: Id, type: S", "name: OrderId, type: S"))  # forces replacement
    result = cli("apply", "--auto-approve", str(root))
    assert result.code == 1
    assert "Apply finished; some changes were refused." in result.out
    assert "1 refused by a safety rule (see above)." in result.out and "failed" not in result.out.split("Apply")[-1]


def test_export_of_a_managed_stack_says_so_once(cli, specs, aws, tmp_path):
    root = specs("t.yaml", TABLE)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    ddb = aws.client("dynamodb")
    ddb.update_table(TableName="Orders", StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    result = cli("export", "--kind", "Table", "-o", str(tmp_path / "out"))
    assert result.code == 0, result.err
    assert "0 to adopt, 1 already managed by reconciler" in result.out and "should show no changes" in result.out
    assert "warning: Table/Orders: StreamSpecification: DynamoDB Streams cannot be expressed" in result.err
    assert "Table/Orders: Table Orders" not in result.err


def test_a_paused_resource_is_observed_and_shown_never_changed_or_created(cli, specs, aws):
    paused = TABLE.replace("metadata: {name: Orders}", "metadata: {name: Orders, paused: true}")
    root = specs("t.yaml", paused)
    plan = cli("plan", "--json", "--detailed-exitcode", str(root))
    [change] = plan.json["changes"]
    assert change["action"] == "create" and change["paused"] is True and "steps" not in change
    assert "1 paused (not applied)" in cli("plan", str(root)).out
    assert cli("apply", "--auto-approve", str(root)).code == 0
    assert aws.client("dynamodb").list_tables()["TableNames"] == []  # not created
    specs("t.yaml", TABLE)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    specs("t.yaml", paused.replace("spec: {", "spec: {tags: {team: ops}, "))
    aws.reset_requests()
    drifted = cli("plan", str(root))
    assert "Table/Orders has drifted (paused: not changed)" in drifted.out
    ran = cli("run", "--once", "--no-lease", str(root))
    assert ran.code == 0 and aws.writes() == []
    [done] = [line for line in ran.err.splitlines() if '"event": "drift.detected"' in line]
    assert '"spec.tags.team"' in done
