"""The agent's pure parts: backoff and how a resource's state is reported."""

from __future__ import annotations

import time
from pathlib import Path

from reconciler.agent.backoff import Backoff
from reconciler.agent.record import state_of as _state_of
from reconciler.agent.source import redact
from reconciler.core.types import Live
from reconciler.engine.apply import Outcome
from reconciler.engine.changes import Change
from reconciler.engine.load import load_specs
from reconciler.kinds.table.kind import Table


def test_backoff_doubles_and_is_capped_and_clears():
    b = Backoff(base_s=10, cap_s=25)
    assert b.waiting("Table/A") == 0
    b.failed("Table/A")
    assert 9 < b.waiting("Table/A") <= 10
    b.failed("Table/A")
    assert 19 < b.waiting("Table/A") <= 20
    b.failed("Table/A")
    assert 24 < b.waiting("Table/A") <= 25  # capped
    assert b.waiting("Table/B") == 0  # others are not held back
    b.succeeded("Table/A")
    assert b.waiting("Table/A") == 0


def test_backoff_expires():
    b = Backoff(base_s=0.05, cap_s=1)
    b.failed("x")
    time.sleep(0.06)
    assert b.waiting("x") == 0


def table(tmp_path: Path, meta: str = "") -> Table:
    (tmp_path / "t.yaml").write_text(f"apiVersion: reconciler/v1\nkind: Table\nmetadata: {{name: T1x{meta}}}\n"
                                     "spec:\n  partitionKey: {name: Id, type: S}\n")
    return Table(load_specs(tmp_path).specs[0])


def test_states_reported_in_status(tmp_path):
    t = table(tmp_path)
    assert _state_of(Change(t, "noop"), None) == ("in-sync", None)
    assert _state_of(Change(t, "error", error="boom"), None) == ("error", "boom")
    update = Change(t, "update")
    assert _state_of(update, Outcome(update, "applied")) == ("in-sync", None)
    assert _state_of(update, Outcome(update, "failed", "UpdateTable failed")) == ("error", "UpdateTable failed")
    assert _state_of(update, Outcome(update, "pending", "deploying")) == ("pending", "deploying")
    waiting = Change(t, "update", waiting="waiting for Bucket/site: it does not exist yet (failed)")
    assert _state_of(waiting, None) == ("waiting", waiting.waiting)  # never `error`, never "retrying in 0s"
    assert _state_of(update, Outcome(update, "waiting", "waiting for Bucket/site: failed"))[0] == "waiting"
    assert _state_of(Change(t, "noop", live=Live("id", {}, pending="deployment InProgress")), None) == (
        "pending", "deployment InProgress")
    observed = Change(table(tmp_path, ", policy: observe"), "update")
    assert _state_of(observed, None) == ("drifted", "policy: observe")


def test_git_urls_are_redacted():
    assert redact("https://user:ghp_secret@example.com/org/repo.git") == "https://user:***@example.com/org/repo.git"
    assert redact("file:///tmp/repo.git") == "file:///tmp/repo.git"


def test_compare_urls_for_the_hosts_whose_scheme_is_known():
    from reconciler.agent.writeback_branch import compare_url

    assert compare_url("https://github.com/acme/stack.git", "main", "drift") == \
        "https://github.com/acme/stack/compare/main...drift?expand=1"
    assert compare_url("git@github.com:acme/stack.git", "main", "drift") == \
        "https://github.com/acme/stack/compare/main...drift?expand=1"
    assert compare_url("https://oauth2:tok@gitlab.com/acme/infra/stack.git", "main", "drift") == \
        "https://gitlab.com/acme/infra/stack/-/compare/main...drift"
    assert compare_url("ssh://git@bitbucket.org/acme/stack.git", "main", "drift") == \
        "https://bitbucket.org/acme/stack/branches/compare/drift%0Dmain"
    assert compare_url("file:///srv/git/stack.git", "main", "drift") is None
    assert compare_url("https://git.example.com/acme/stack.git", "main", "drift") is None


def test_an_event_is_read_as_cloudtrail_sends_it_and_anything_else_is_dropped_with_a_reason():
    import copy
    import json
    from pathlib import Path

    from reconciler.agent.watch import EventIndex, read_event

    fixture = json.loads((Path(__file__).parents[2] / "fixtures" / "cloudtrail_tag_table.json").read_text())
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/Users"
    fixture["detail"]["requestParameters"]["resourceArn"] = arn
    index = EventIndex({("dynamodb.amazonaws.com", "resourceArn", "Users"): {"Table/Users"}})
    verdict, [touch] = read_event(json.dumps(fixture), index)
    assert verdict == "ok" and touch.ref == "Table/Users"  # by the ARN's name: a table created since the plan
    assert touch.describe() == "arn:aws:sts::123456789012:assumed-role/oncall/alice (dynamodb:TagResource, " \
        "2026-11-26T03:12:07Z)"

    def variant(change) -> str:
        event = copy.deepcopy(fixture)
        change(event)
        return read_event(json.dumps(event), index)[0]

    assert variant(lambda e: e["detail"].update(userAgent="aws-cli/2 reconciler/0.1.0")) == "own"
    assert variant(lambda e: e["detail"].update(readOnly=True)) == "read-only"
    assert variant(lambda e: e["detail"]["requestParameters"].update(resourceArn=arn + "x")) == "foreign"
    assert variant(lambda e: e["detail"].update(eventSource="s3.amazonaws.com")) == "foreign"
    assert variant(lambda e: e.update({"detail-type": "Object Created"})) == "malformed"
    assert variant(lambda e: e.update(detail=[1])) == "malformed"
    assert read_event("{not json", index)[0] == "malformed" and read_event("[]", index)[0] == "malformed"


def test_the_write_back_commit_names_who_changed_it_when_aws_said():
    from reconciler.agent.writeback_branch import commit_message
    from reconciler.engine.writeback import WriteBack, WrittenField

    result = WriteBack(entries=[
        WrittenField("Table/Orders", "spec.tags.team", "web", "platform", True, file="specs/orders.yaml"),
        WrittenField("CacheCluster/app-cache", "spec.authToken", "x", "y", False, "a secret: never written to a spec")])
    message = commit_message(result, "abc123", "main", {"Table/Orders": "arn:aws:iam::1:user/alice (dynamodb:"
                                                                       "TagResource, 2026-11-26T03:12:07Z)"})
    assert message.splitlines()[0] == "reconciler: write back drift of Table/Orders"
    assert "Table/Orders spec.tags.team: web -> platform (specs/orders.yaml)" in message
    assert "Table/Orders last changed by arn:aws:iam::1:user/alice (dynamodb:TagResource, 2026-11-26T03:12:07Z)" \
        in message
    assert "CacheCluster/app-cache spec.authToken: a secret: never written to a spec" in message
    assert message.rstrip().endswith("Based on abc123 of main.")
