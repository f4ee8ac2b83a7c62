"""The sandbox against AWS's own words: every case of the conformance corpus, at a small factor of AWS's time.

The corpus (`../shared/aws-conformance/`, copied verbatim to tests/aws-conformance/) is the contract: a
case the sandbox fails is a sandbox bug unless docs/sandbox.md lists it under "Cases not served" with the
reason and AWS's source. Cases run side by side on a sandbox of their own; a case that fails there is run
again alone (a busy machine can miss a window AWS keeps open for seconds: a put while a table is
CREATING), then alone at ten times the factor; it fails the test only if it fails each time.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from reconciler.sandbox import Sandbox
from tests.conformance import SHARED, VENDORED, Case, Runner, StepFailed, known_exceptions, load_cases
from tests.conftest import ROOT, sandbox_client

FACTOR = 0.02     # AWS's time x 0.02: a table is CREATING for 0.4 s, a cache for 12 s
WORKERS = 8
CASES = load_cases(VENDORED)


@pytest.fixture(scope="module")
def conformance_sandbox() -> Iterator[Sandbox]:
    box = Sandbox(aws_time=FACTOR)
    box.start()
    yield box
    box.stop()


def _runner(box: Sandbox) -> Runner:
    def clients(service: str) -> object:
        return sandbox_client(box.endpoint, service)

    return Runner(clients, box.clock.factor)


def _attempt(box: Sandbox, case: Case) -> str | None:
    """None when the case passes, else what failed."""
    try:
        _runner(box).run(case)
        return None
    except StepFailed as exc:
        return str(exc)


def test_the_vendored_corpus_is_the_shared_one_verbatim():
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not beside this checkout; the vendored copy is used as is")
    shared = {p.name: p.read_bytes() for p in SHARED.iterdir() if p.is_file()}
    vendored = {p.name: p.read_bytes() for p in VENDORED.iterdir() if p.is_file()}
    assert vendored == shared, "tests/aws-conformance differs from ../shared/aws-conformance: copy it again"


@pytest.mark.slow
def test_every_case_of_the_corpus_passes_or_is_listed_with_aws_source(conformance_sandbox):
    listed = known_exceptions(ROOT / "docs" / "sandbox.md")
    assert set(listed) <= {c.id for c in CASES}, "docs/sandbox.md lists a case the corpus does not have"
    served = [c for c in CASES if c.id not in listed]
    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        first = dict(zip([c.id for c in served], pool.map(lambda c: _attempt(conformance_sandbox, c), served),
                         strict=True))
    failures: dict[str, str] = {}
    retried = [c for c in served if first[c.id] is not None]
    for case in retried:
        outcome = _attempt(conformance_sandbox, case)  # alone: no other case competes for the machine
        if outcome is not None:
            outcome = _at_ten_times(conformance_sandbox, case)
        if outcome is not None:
            failures[case.id] = outcome
    # a listed case must still fail, at a factor whose windows a busy machine cannot miss
    stale = sorted(c.id for c in CASES if c.id in listed and _at_ten_times(conformance_sandbox, c) is None)
    print(f"\nconformance: {len(CASES)} cases, {len(served) - len(failures)} passed, {len(listed)} listed as not "
          f"served ({', '.join(listed) or 'none'}), {len(retried)} retried alone "
          f"({', '.join(c.id for c in retried) or 'none'}), {time.monotonic() - started:.0f}s", file=sys.stderr)
    assert not failures, "cases the sandbox fails:\n" + "\n".join(failures.values())
    assert not stale, f"docs/sandbox.md lists cases that now pass: {stale}"
    assert len(CASES) >= 60


def _at_ten_times(box: Sandbox, case: Case) -> str | None:
    box.clock.factor = FACTOR * 10
    try:
        return _attempt(box, case)
    finally:
        box.clock.factor = FACTOR


def test_the_runner_fails_a_case_that_gets_another_answer(conformance_sandbox):
    """The runner is a check that can fail: a case whose documented error does not come is reported."""
    wrong = Case("made-up.put-missing-table-succeeds", "-", "-", [
        {"call": "dynamodb.put_item", "args": {"TableName": "{prefix}missing", "Item": {"pk": {"S": "x"}}}}])
    assert "ResourceNotFoundException" in (_attempt(conformance_sandbox, wrong) or "")
    value = Case("made-up.value", "-", "-", [
        {"call": "dynamodb.list_tables", "args": {}, "path": "length(TableNames) > `100000`", "equals": True}])
    assert "is False" in (_attempt(conformance_sandbox, value) or "")
