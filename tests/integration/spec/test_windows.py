"""Change windows as a user meets them: the plan says which window holds what and until when; the agent
leaves it alone and reports window.blocked; a hand-run apply goes through a `manual` window; an allow
window blocks outside its hours and lets through inside."""

from __future__ import annotations

import json

from tests.specs import table

TABLE = table("Orders", tags={"team": "TEAM"})
ALWAYS = "* * * * *"   # opens every minute, for an hour: open now, whenever the test runs
NEVER = "0 0 1 1 *"    # opens on 1 January at midnight, for a minute: closed now (but for that minute)


def window(name: str, kind: str, schedule: str, duration: str, manual: bool = False) -> str:
    return (f"---\napiVersion: reconciler/v1\nkind: ChangeWindow\nmetadata: {{name: {name}}}\n"
            f"spec: {{type: {kind}, schedule: '{schedule}', duration: {duration}, appliesTo: ['Table/*'], "
            f"manual: {str(manual).lower()}}}\n")


def test_a_deny_window_holds_the_agent_but_not_a_manual_apply(cli, specs, aws):
    root = specs("t.yaml", TABLE.replace("TEAM", "web"))
    assert cli("apply", "--auto-approve", str(root)).code == 0
    specs("t.yaml", TABLE.replace("TEAM", "platform") + window("freeze", "deny", ALWAYS, "1h", manual=True))
    plan = cli("plan", "--json", str(root))
    [change] = [c for c in plan.json["changes"] if c["kind"] == "Table"]
    assert change["action"] == "update" and change["blockedBy"].startswith("change window 'freeze' until ")
    assert "blocked by change window 'freeze'" in cli("plan", str(root)).out
    aws.reset_requests()
    ran = cli("run", "--once", "--no-lease", str(root))
    assert ran.code == 0 and aws.writes() == []
    [event] = [json.loads(line) for line in ran.err.splitlines() if '"event": "window.blocked"' in line]
    assert event["fields"] == [{"path": "spec.tags.team", "before": "web", "after": "platform"}]
    applied = cli("apply", "--auto-approve", str(root))  # by hand: manual: true lets it through
    assert applied.code == 0 and "update complete" in applied.out


def test_an_allow_window_blocks_outside_its_hours_and_lets_through_inside(cli, specs, aws):
    root = specs("t.yaml", TABLE.replace("TEAM", "web") + window("office", "allow", NEVER, "1m"))
    aws.reset_requests()
    held = cli("run", "--once", "--no-lease", str(root))
    assert held.code == 0 and aws.writes() == []  # not even created outside the window
    specs("t.yaml", TABLE.replace("TEAM", "web") + window("office", "allow", ALWAYS, "1h"))
    assert cli("run", "--once", "--no-lease", str(root)).code == 0
    assert aws.client("dynamodb").list_tables()["TableNames"] == ["Orders"]


def test_a_broken_window_is_a_spec_error(cli, specs):
    text = TABLE.replace("TEAM", "web") + window("freeze", "deny", "every friday", "1h")
    result = cli("validate", str(specs("t.yaml", text.replace("timeZone", "x"))))
    assert result.code == 1 and "spec.schedule: 'every friday' is not a cron expression" in result.err
