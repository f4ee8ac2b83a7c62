"""The agent's pure parts: backoff and how a resource's state is reported."""

from __future__ import annotations

import time
from pathlib import Path

from reconciler.agent.daemon import Backoff, _state_of
from reconciler.agent.source import redact
from reconciler.engine.apply import Outcome
from reconciler.engine.plan import Change
from reconciler.loading import load_specs
from reconciler.model import Live
from reconciler.resources.dynamodb import Table


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
    assert _state_of(Change(t, "noop"), None, 0) == ("in-sync", None)
    assert _state_of(Change(t, "error", error="boom"), None, 0) == ("error", "boom")
    update = Change(t, "update")
    assert _state_of(update, Outcome(update, "applied"), 0) == ("in-sync", None)
    assert _state_of(update, Outcome(update, "failed", "UpdateTable failed"), 0) == ("error", "UpdateTable failed")
    assert _state_of(update, Outcome(update, "pending", "deploying"), 0) == ("pending", "deploying")
    assert _state_of(update, None, 30)[0] == "error"  # deferred by backoff
    assert _state_of(Change(t, "noop", live=Live("id", {}, pending="deployment InProgress")), None, 0) == (
        "pending", "deployment InProgress")
    observed = Change(table(tmp_path, ", policy: observe"), "update")
    assert _state_of(observed, None, 0) == ("drifted", "policy: observe")


def test_git_urls_are_redacted():
    assert redact("https://user:ghp_secret@example.com/org/repo.git") == "https://user:***@example.com/org/repo.git"
    assert redact("file:///tmp/repo.git") == "file:///tmp/repo.git"


def test_compare_urls_for_the_hosts_whose_scheme_is_known():
    from reconciler.agent.writeback import compare_url

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
