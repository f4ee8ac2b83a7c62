"""`run --write-back-branch`: drift the agent does not correct becomes one commit for review (issue 15).

The daemon runs as a user runs it, following a branch of a bare git repository."""

from __future__ import annotations

import subprocess

from tests.conftest import reconciler_command, wait_for
from tests.e2e.conftest import git, tags_of

SPEC = """\
# The orders table: watched, not enforced, while the team migrates.
apiVersion: reconciler/v1
kind: Table
metadata: {name: Orders, policy: POLICY}
spec:
  partitionKey: {name: OrderId, type: S}
  tags: {team: web}   # who owns it
"""


def branch_commits(repo) -> list[str]:
    """Commits on the write-back branch that main does not have (empty when the branch is absent, also when the
    agent deletes it while this looks: the agent pushes while the test reads)."""
    proc = subprocess.run(["git", "-C", str(repo.bare), "rev-list", "main..refs/heads/writeback", "--"],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode == 0:
        return proc.stdout.split()
    heads = git(repo.bare, "for-each-ref", "--format=%(refname:short)", "refs/heads/")
    assert "writeback" not in heads.split(), proc.stderr  # a failure for another reason than a missing branch
    return []


def test_observe_drift_becomes_one_commit_updated_when_the_drift_changes(aws, repo, start_daemon):
    repo.commit({"specs/orders.yaml": SPEC.replace("POLICY", "enforce")}, "Orders table")
    daemon = start_daemon(repo, "1s")
    ddb = aws.client("dynamodb")
    wait_for(lambda: "Orders" in ddb.list_tables()["TableNames"], what="the table")
    daemon.proc.terminate()
    daemon.proc.wait(timeout=30)
    main = repo.commit({"specs/orders.yaml": SPEC.replace("POLICY", "observe")}, "Orders: observe only")
    arn = ddb.describe_table(TableName="Orders")["Table"]["TableArn"]
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "platform"}])  # the console was right

    daemon = start_daemon(repo, "1s", "--write-back-branch", "writeback")
    wait_for(lambda: len(branch_commits(repo)) == 1, what="the write-back commit")
    first = git(repo.bare, "rev-parse", "writeback")
    assert git(repo.bare, "rev-parse", "writeback^") == main  # on top of the followed commit
    diff = git(repo.bare, "diff", "main", "writeback")
    assert "-  tags: {team: web}   # who owns it\n+  tags: {team: platform}   # who owns it" in diff
    changed = [line for line in diff.splitlines() if line.startswith(("+", "-")) and line[:3] not in ("+++", "---")]
    assert len(changed) == 2  # that line and nothing else
    message = git(repo.bare, "log", "-1", "--format=%B", "writeback")
    assert message.startswith("reconciler: write back drift of Table/Orders\n")
    assert "Table/Orders spec.tags.team: web -> platform (specs/orders.yaml)" in message
    # who changed it, from CloudTrail's event history (no --watch-events): the sandbox's caller is the root
    assert "Table/Orders last changed by arn:aws:iam::123456789012:root (dynamodb:TagResource, " in message
    assert git(repo.bare, "log", "-1", "--format=%an <%ae>", "writeback") == "reconciler <reconciler@localhost>"
    status = daemon.status()["writeBack"]
    assert status["branch"] == "writeback" and status["commit"] == first
    assert status["fields"] == [{"resource": "Table/Orders", "path": "spec.tags.team", "written": True,
                                 "before": "web", "after": "platform", "file": "specs/orders.yaml"}]
    assert tags_of(aws, "Orders")["team"] == "platform"  # observe: AWS is not touched
    orders = next(r for r in daemon.status()["resources"] if r["name"] == "Orders")
    assert orders["changedBy"]["principal"] == "arn:aws:iam::123456789012:root"
    assert orders["changedBy"]["call"] == "dynamodb:TagResource"
    page = daemon.get("/")[1]
    assert "changed by <code>arn:aws:iam::123456789012:root</code> (dynamodb:TagResource" in page
    assert f'write-back <code>writeback</code>: 1 field(s) to review in <code>{first[:12]}</code>' in page

    cycles = daemon.status()["lastCycle"]["finished"]
    wait_for(lambda: len(daemon.status()["cycles"]) >= 4 and daemon.status()["lastCycle"]["finished"] != cycles,
             what="several more cycles")
    assert git(repo.bare, "rev-parse", "writeback") == first  # the same drift: no second commit
    assert daemon.status()["writeBack"]["state"] == "unchanged"

    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "payments"}])  # the drift changes
    wait_for(lambda: "team: payments" in git(repo.bare, "show", "writeback:specs/orders.yaml"),
             what="the branch updated")
    assert branch_commits(repo) == [git(repo.bare, "rev-parse", "writeback")]  # still one commit ahead
    assert git(repo.bare, "rev-parse", "main") == main  # the followed branch is never written
    pushed = [e for e in daemon.events() if e.get("event") == "writeback.pushed"]
    assert len(pushed) == 2 and pushed[-1]["branch"] == "writeback"

    # a person merges it: nothing is left to write back, and the branch goes away
    git(repo.work, "fetch", "-q", "origin", "writeback")
    git(repo.work, "merge", "-q", "--ff-only", "origin/writeback")
    git(repo.work, "push", "-q", "origin", "main")
    wait_for(lambda: branch_commits(repo) == [] and daemon.status()["writeBack"]["state"] in ("deleted", "none"),
             what="the merged branch deleted")
    plan_state = daemon.status()["resources"][0]
    assert plan_state["state"] == "in-sync", plan_state


def test_enforced_drift_is_corrected_not_written_back_and_the_followed_branch_is_refused(aws, repo, start_daemon,
                                                                                         tmp_path):
    repo.commit({"specs/orders.yaml": SPEC.replace("POLICY", "enforce")}, "Orders table")
    daemon = start_daemon(repo, "1s", "--write-back-branch", "writeback")
    ddb = aws.client("dynamodb")
    wait_for(lambda: "Orders" in ddb.list_tables()["TableNames"], what="the table")
    arn = ddb.describe_table(TableName="Orders")["Table"]["TableArn"]
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "hijacked"}])
    wait_for(lambda: tags_of(aws, "Orders")["team"] == "web", what="the drift corrected")
    wait_for(lambda: daemon.status().get("writeBack", {}).get("state") == "none", what="a write-back pass")
    assert branch_commits(repo) == []
    follow = subprocess.run([*reconciler_command(), "run", "specs", "--once", "--git-url", f"file://{repo.bare}",
                             "--write-back-branch", "main", "--state-dir", str(tmp_path / "s")],
                            env=aws.env, capture_output=True, text=True, timeout=60)
    assert follow.returncode == 1
    assert "--write-back-branch main: that is the branch the agent follows; the agent never writes it" in follow.stderr
    plain = subprocess.run([*reconciler_command(), "run", "specs", "--once", "--write-back-branch", "wb"],
                           env=aws.env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert plain.returncode == 1 and "--write-back-branch needs --git-url" in plain.stderr
