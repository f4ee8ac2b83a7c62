"""A bug in reconciler is reported as one, naming the resource and the exception, never as a failed AWS
call; RECONCILER_DEBUG=1 logs its traceback. An AWS failure names the call."""

from __future__ import annotations

import botocore.exceptions
import pytest
import structlog

from reconciler.aws.failures import describe_failure
from reconciler.core.types import Step
from reconciler.engine.apply import _apply_one
from reconciler.engine.changes import Change
from reconciler.engine.load import load_specs
from reconciler.kinds.table.kind import Table
from tests.specs import table

TABLE = table("Users")


@pytest.fixture(autouse=True)
def key_value_logs():
    # the logger factory too: another test of this worker may have configured one writing to a stream pytest
    # has closed since
    structlog.configure(processors=[structlog.processors.format_exc_info, structlog.processors.KeyValueRenderer()],
                        logger_factory=structlog.PrintLoggerFactory(), cache_logger_on_first_use=False)
    yield
    structlog.reset_defaults()


class BuggyTable(Table):
    """A kind whose update step has a bug (the KeyError of issue 12's billing switch)."""

    def steps(self, aws, action, live, changes):
        return [Step("UpdateTable: billing mode", lambda: {}["capacity"])]


def buggy_change(tmp_path) -> Change:
    (tmp_path / "t.yaml").write_text(TABLE)
    resource = BuggyTable(load_specs(tmp_path).specs[0])
    change = Change(resource, "update")
    change.steps = resource.steps(None, "update", None, [])
    return change


def test_a_bug_is_reported_as_ours_with_the_resource_and_the_exception(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("RECONCILER_DEBUG", raising=False)
    outcome = _apply_one(buggy_change(tmp_path), aws=None)
    assert outcome.status == "failed"
    assert outcome.message.startswith("internal error in reconciler while applying Table/Users (not an AWS failure): "
                                      "KeyError: 'capacity' at test_a_failure_stays_with_its_resource.py:")
    assert "please report it" in outcome.message and "UpdateTable failed" not in outcome.message
    assert "Traceback" not in capsys.readouterr().out


def test_debug_logs_the_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECONCILER_DEBUG", "1")
    _apply_one(buggy_change(tmp_path), aws=None)
    out = capsys.readouterr().out
    assert "Traceback (most recent call last)" in out and "KeyError: 'capacity'" in out


def test_an_aws_failure_names_the_call():
    error = botocore.exceptions.ClientError(
        {"Error": {"Code": "ResourceInUseException", "Message": "Table is being updated"}}, "UpdateTable")
    assert describe_failure(error, "Table/Users", "applying") == (
        "UpdateTable failed: ResourceInUseException: Table is being updated")
