"""Rendering: the plan JSON contract and the human text."""

from __future__ import annotations

import json
from pathlib import Path

import click

from reconciler.cli.views.plan import plan_json, render_plan
from reconciler.core.types import FieldChange, Live, ownership_tags
from reconciler.engine.changes import Change, Plan
from reconciler.engine.decide import decide
from reconciler.engine.load import load_specs
from reconciler.kinds.table.kind import Table

SPEC = """\
apiVersion: reconciler/v1
kind: Table
metadata: {name: Users}
spec:
  partitionKey: {name: UserId, type: S}
  tags: {team: web}
"""


def table(tmp_path: Path, extra: str = "", meta: str = "") -> Table:
    text = SPEC.replace("{name: Users}", "{name: Users" + meta + "}") + extra
    (tmp_path / "t.yaml").write_text(text)
    return Table(load_specs(tmp_path).specs[0])


def live(tags: dict[str, str], **state) -> Live:
    base = {"partitionKey": {"name": "UserId", "type": "S"}, "sortKey": None,
            "billingMode": "PAY_PER_REQUEST", "tags": tags}
    return Live(id="arn:x", state={**base, **state}, tags=tags)


def test_plan_json_has_the_contract_shape(tmp_path):
    resource = table(tmp_path)
    change = decide(resource, live({**ownership_tags("Users"), "team": "ops"}))
    doc = json.loads(plan_json(Plan([change])))
    assert doc["format"] == "reconciler.plan/v1"
    assert doc["changes"] == [{"kind": "Table", "name": "Users", "action": "update",
                               "fields": [{"path": "spec.tags.team", "before": "ops", "after": "web"}]}]
    assert doc["summary"] == {"create": 0, "adopt": 0, "update": 1, "replace": 0, "delete": 0,
                              "noop": 0, "error": 0}


def test_unowned_is_an_error_with_the_adopt_hint_and_adopt_plans_adoption(tmp_path):
    change = decide(table(tmp_path), live({"team": "web"}))
    assert change.action == "error" and "metadata.adopt: true" in change.error
    adopted = decide(table(tmp_path, meta=", adopt: true"), live({"team": "web"}))
    assert adopted.action == "adopt"
    assert {f.path for f in adopted.fields} == {"spec.tags.managed-by", "spec.tags.reconciler:name"}


def test_observe_error_is_never_absent(tmp_path):
    change = decide(table(tmp_path), RuntimeError("connection reset"))
    assert change.action == "error" and "connection reset" in change.error


def test_key_change_is_a_refused_replacement_without_opt_in(tmp_path):
    owned = {**ownership_tags("Users"), "team": "web"}
    state = {"partitionKey": {"name": "Id", "type": "S"}}
    change = decide(table(tmp_path), live(owned, **state))
    assert change.action == "replace" and "allowReplacement" in change.refused
    allowed = decide(table(tmp_path, meta=", allowReplacement: true"), live(owned, **state))
    assert allowed.action == "replace" and allowed.refused is None


def test_text_uses_terraform_symbols_and_hides_sensitive_values(tmp_path):
    resource = table(tmp_path)
    change = Change(resource, "update", fields=[
        FieldChange("spec.tags.team", "ops", "web"),
        FieldChange("spec.authToken", "old-secret", "new-secret", sensitive=True)])
    text = click.unstyle(render_plan(Plan([change])))
    assert '~ Table \'Users\'' in text and '~ spec.tags.team = "ops" -> "web"' in text
    assert "old-secret" not in text and "new-secret" not in text and "(sensitive value)" in text
    assert "Plan: 0 to add, 0 to adopt, 1 to change, 0 to replace, 0 to destroy." in text
    assert "old-secret" not in plan_json(Plan([change]))


def test_no_changes_says_so(tmp_path):
    change = decide(table(tmp_path), live({**ownership_tags("Users"), "team": "web"}))
    assert change.action == "noop"
    assert click.unstyle(render_plan(Plan([change]))).strip() == "No changes. The stack matches the specs."


def test_the_page_chart_and_verdicts():
    from reconciler.agent.serve.page import chart, overall, sync

    cycles = [{"finished": "t1", "durationSeconds": 1.0, "result": "ok", "changes": 1, "errors": 0},
              {"finished": "t2", "durationSeconds": 0.5, "result": "error", "changes": 0, "errors": 1}]
    drawn = chart(cycles, width=600, slots=60)
    assert [b["x"] for b in drawn["bars"]] == [1.0, 11.0] and drawn["bars"][1]["failed"] and drawn["top"] == 1.0
    assert drawn["bars"][0]["h"] > drawn["bars"][1]["h"]
    status = {"lastCycle": {"result": "ok"}, "resources": [{"state": "in-sync"}, {"state": "pending"}]}
    assert overall(status) == "progressing" and sync(status) == "drifted"
    assert overall({"lastCycle": None}) == "unknown"
    assert overall({**status, "resources": [{"state": "error"}]}) == "degraded"
    assert overall({**status, "resources": [{"state": "in-sync"}]}) == "healthy"
