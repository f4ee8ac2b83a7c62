"""Destructive changes: a per-run budget, and a backup before a table is deleted."""

from __future__ import annotations

TABLE = """\
apiVersion: reconciler/v1
kind: Table
metadata: {name: %s%s}
spec:
  partitionKey: {name: Id, type: S}
"""


def test_too_many_deletes_in_one_run_are_all_refused(cli, specs, aws):
    names = ["Alpha", "Bravo", "Charlie"]
    for n in names:
        root = specs(f"{n}.yaml", TABLE % (n, ""))
    assert cli("apply", "--auto-approve", str(root)).code == 0
    for n in names:
        specs(f"{n}.yaml", TABLE % (n, ", state: absent, deletion: delete"))
    refused = cli("apply", "--auto-approve", "--max-destroy", "2", str(root))
    assert refused.code == 1 and "exceed the budget of 2" in refused.out
    assert set(names) <= set(aws.client("dynamodb").list_tables()["TableNames"])
    allowed = cli("apply", "--auto-approve", "--max-destroy", "3", str(root))
    assert allowed.code == 0, allowed.out
    assert not set(names) & set(aws.client("dynamodb").list_tables()["TableNames"])


def test_a_table_is_backed_up_before_it_is_deleted(cli, specs, aws):
    root = specs("t.yaml", TABLE % ("Ledger", ""))
    assert cli("apply", "--auto-approve", str(root)).code == 0
    aws.client("dynamodb").put_item(TableName="Ledger", Item={"Id": {"S": "row"}})
    specs("t.yaml", TABLE % ("Ledger", ", state: absent, deletion: delete"))
    plan = cli("plan", str(root))
    assert "an on-demand backup (reconciler-<name>-<time>) is taken first" in plan.out
    assert cli("apply", "--auto-approve", str(root)).code == 0
    backups = aws.client("dynamodb").list_backups(TableName="Ledger")["BackupSummaries"]
    assert [b["BackupName"].startswith("reconciler-Ledger-") for b in backups] == [True]
    assert "Ledger" not in aws.client("dynamodb").list_tables()["TableNames"]
