"""What the operator is told, as pure parts: how long AWS will take (priors, then what was observed, kept
across restarts), why a change is made (create, sync, drift; kept across restarts), and plain JSON values."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import structlog

from reconciler.agent.ledger import Ledger, Operation
from reconciler.aws.expected_durations import ENOUGH, ExpectedDurations, in_words
from reconciler.aws.typical_durations import TYPICAL_DURATIONS
from reconciler.core.log import configure_logging, plain
from reconciler.engine.changes import Change
from reconciler.engine.load import load_specs
from reconciler.kinds.table.kind import Table


def table(tmp_path: Path, capacity: int = 5, policy: str = "enforce", name: str = "Products") -> Table:
    (tmp_path / "t.yaml").write_text(
        f"apiVersion: reconciler/v1\nkind: Table\nmetadata: {{name: {name}, policy: {policy}}}\n"
        f"spec:\n  partitionKey: {{name: Id, type: S}}\n  billingMode: PROVISIONED\n"
        f"  capacity: {{read: {capacity}, write: {capacity}}}\n")
    return Table(load_specs(tmp_path).specs[0])


def test_aws_typical_figures_until_the_agent_has_seen_a_few_of_its_own(tmp_path):
    kept = tmp_path / "durations.json"
    durations = ExpectedDurations(kept)
    prior = durations.expected("dynamodb.throughput")
    assert (prior.seconds, prior.p90, prior.source) == (60, 120, "typical (AWS)")
    assert prior.slow_after(30) == 1.5 * 120 + 30  # slow: past 1.5 x p90, and the next look
    for seconds in (40, 50, 200)[: ENOUGH - 1]:
        durations.observed("dynamodb.throughput", seconds)
    assert durations.expected("dynamodb.throughput").source == "typical (AWS)"  # not yet enough
    durations.observed("dynamodb.throughput", 200)
    learnt = ExpectedDurations(kept).expected("dynamodb.throughput")  # a restart reads what was observed
    assert (learnt.seconds, learnt.p90, learnt.source) == (50, 200, f"observed ({ENOUGH})")
    expected = ExpectedDurations(kept).expected("elasticache.scale")
    assert expected.seconds == TYPICAL_DURATIONS["elasticache.scale"].seconds
    durations.observed("no.such.work", 5)  # unknown work is not kept
    assert "no.such.work" not in json.loads(kept.read_text())


def test_a_damaged_durations_file_only_loses_the_history(tmp_path):
    kept = tmp_path / "durations.json"
    kept.write_text("{not json")
    assert ExpectedDurations(kept).expected("cloudfront.deploy").source == "typical (AWS)"


def test_durations_as_people_read_them():
    assert [in_words(s) for s in (0.2, 45, 240, 5400 * 2, 31_536_000)] == ["<1s", "45s", "4 min", "3.0 h", "365 days"]


def test_why_a_change_is_made_survives_a_restart(tmp_path):
    kept = tmp_path / "ledger.json"
    ledger = Ledger(kept)
    (tmp_path / "a").mkdir()
    five = table(tmp_path / "a", 5)
    assert ledger.cause(Change(five, "create")) == "create"
    ledger.started(five.ref, Operation("create", "create", 1.0, work="dynamodb.create", work_started=1.0), busy=True)
    assert ledger.cause(Change(five, "update")) == "create"  # a creation's later steps belong to it
    assert ledger.converge(Change(five, "noop"), "r1", "now") is not None  # the creation is over
    assert ledger.converge(Change(five, "noop"), "r1", "later") is None  # nothing new, nothing written
    ledger.flush()  # once per reconcile
    restarted = Ledger(kept)
    assert restarted.cause(Change(five, "update")) == "drift"  # same spec, live differs: drift
    (tmp_path / "b").mkdir()
    six = table(tmp_path / "b", 6)
    assert restarted.cause(Change(six, "update")) == "sync"  # the spec changed: a sync
    assert Ledger(tmp_path / "none.json").cause(Change(five, "update")) == "sync"  # never converged: adopting


def test_work_over_is_measured_when_the_next_work_starts_or_aws_is_idle(tmp_path):
    ledger = Ledger(None)
    first = Operation("drift", "update", 100.0, work="dynamodb.throughput", work_started=100.0)
    assert ledger.started("Table/T", first, busy=True) is None
    assert ledger.started("Table/T", Operation("drift", "update", 0.0), busy=True) is None  # AWS still busy
    over = ledger.started("Table/T", Operation("drift", "update", 0.0), busy=False)  # waits for a rule now
    assert over is not None and over[0] == "dynamodb.throughput"
    assert ledger.get("Table/T").work is None
    ledger.started("Table/T", Operation("drift", "update", 0.0, work="dynamodb.ttl", work_started=200.0), busy=False)
    assert ledger.get("Table/T").work == "dynamodb.ttl" and ledger.mark_slow("Table/T")
    assert not ledger.mark_slow("Table/T")  # once
    ledger.forget(set())
    assert ledger.get("Table/T") is None


def test_logs_hold_plain_json_values(capsys):
    assert plain({"Price": Decimal("12.5"), "Version": Decimal("1"), "Tags": {"b", "a"}, "raw": b"\x00"}) == {
        "Price": 12.5, "Version": 1, "Tags": ["a", "b"], "raw": "AA=="}
    configure_logging("info", json_output=True)
    structlog.get_logger().info("apply.update", item={"Price": Decimal("12.5"), "Dimensions": [Decimal("9.5")]})
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert json.loads(line)["item"] == {"Price": 12.5, "Dimensions": [9.5]}
    assert "Decimal" not in line
    configure_logging("info", json_output=False, color=False)
    structlog.get_logger().info("apply.update", price=Decimal("12.5"))
    assert "Decimal" not in capsys.readouterr().err


def test_the_sandbox_looks_up_at_most_two_a_second():
    """CloudTrail API Reference, LookupEvents: "The rate of lookup requests is limited to two per second, per
    account, per Region. If this limit is exceeded, a throttling error occurs." """
    from reconciler.sandbox.cloudtrail import Trail

    now = [0.0]
    trail = Trail(clock=lambda: now[0])
    answers = [trail.lookup({})[0] for _ in range(3)]
    assert answers == [200, 200, 400]
    assert trail.lookup({})[1]["__type"] == "ThrottlingException"
    now[0] = 1.0
    assert trail.lookup({})[0] == 200


def test_the_closing_report_counts_every_resource_once_and_keeps_lines_short(tmp_path):
    from reconciler.cli.views.report import summarize
    from reconciler.engine.apply import ApplyReport, Outcome
    from reconciler.engine.changes import Plan

    resources = []
    for name in ("Aaa", "Bbb", "Ccc", "Ddd"):
        (tmp_path / name).mkdir()
        resources.append(table(tmp_path / name, policy="observe" if name == "Ccc" else "enforce", name=name))
    failed, updated, observed, same = (Change(r, a) for r, a in zip(resources, ("update", "update", "update", "noop"),
                                                                     strict=True))
    error = "ValidationException: " + "the provisioned throughput is out of range " * 10 + "\n  (line two)"
    report = ApplyReport([Outcome(failed, "failed", error), Outcome(updated, "applied")])
    summary = summarize(Plan([failed, updated, observed, same]), report, ExpectedDurations(None),
                        again="run `reconciler apply`")
    assert summary.counts_line() == ("0 created, 1 updated, 0 in progress with AWS, 1 failed, 1 unchanged, "
                                     "1 not applied (observe, paused or held).")
    lines = summary.lines()
    assert lines[0].startswith("! Table/Aaa: update failed: ValidationException: the provisioned")
    assert len(lines[0]) == 200 and lines[0].endswith("...") and "\n" not in lines[0]
    assert lines[1] == "~ Table/Bbb: updated"
    assert lines[2].startswith("? Table/Ccc: differs from its spec") and "policy: observe" in lines[2]
    assert lines[-1].startswith("Failed: Table/Aaa. Fix the cause") and "run `reconciler apply` again" in lines[-1]
    event = summary.to_event()
    assert (event["failed"], event["updated"], event["not_applied"]) == (1, 1, 1)
    assert [r["result"] for r in event["resources"]] == ["failed", "updated", "not-applied"]
