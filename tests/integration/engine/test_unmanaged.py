"""Resources that carry the agent's ownership tags but that no spec declares any more: listed, never touched."""

from __future__ import annotations

from tests.integration.engine.test_faults import STACK


def test_removed_specs_leave_their_resources_listed_as_unmanaged(cli, specs, aws):
    root = specs("stack.yaml", STACK)
    assert cli("apply", "--auto-approve", str(root)).code == 0
    assert cli("run", "--once", str(root)).code == 0  # the agent's lease table now exists too: never listed
    specs("stack.yaml", STACK.split("---\n")[0])  # only the Users table is still declared
    aws.reset_requests()
    plan = cli("plan", "--json", "--detailed-exitcode", str(root))
    assert plan.code == 0, plan.out + plan.err  # unmanaged resources are not changes
    assert [(u["kind"], u["name"]) for u in plan.json["unmanaged"]] == [
        ("Bucket", "fault-site"), ("CacheCluster", "app-cache"), ("Distribution", "website"), ("Table", "Orders")]
    assert aws.writes() == []
    text = cli("plan", str(root))
    assert "Unmanaged: these carry reconciler's ownership tags" in text.out and "? Table/Orders" in text.out
    assert "Orders" in aws.client("dynamodb").list_tables()["TableNames"]  # untouched
