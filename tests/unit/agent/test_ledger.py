"""What the ledger learns of AWS's durations: only work it saw end."""

from __future__ import annotations

import time

from reconciler.agent.ledger import Ledger, Operation


def _create(work: str, started: float) -> Operation:
    return Operation(cause="create", action="create", started=started, work=work, work_started=started)


def test_a_create_sent_again_is_not_taken_for_the_end_of_the_one_before(tmp_path):
    """A sandbox gone since the last run left its create open in the state directory: the new create is a new
    operation, and the hours between the two runs are no duration of AWS's."""
    ledger = Ledger(tmp_path / "ledger.json")
    hours_ago = time.time() - 5 * 3600
    assert ledger.started("Table/Users", _create("dynamodb.create", hours_ago), busy=True) is None
    assert ledger.started("Table/Users", _create("dynamodb.create", time.time()), busy=True) is None
    assert ledger.open["Table/Users"].work_started > hours_ago


def test_the_next_step_of_an_operation_ends_the_work_before_it(tmp_path):
    ledger = Ledger(tmp_path / "ledger.json")
    started = time.time() - 60
    ledger.started("CacheCluster/app-cache", _create("elasticache.create", started), busy=True)
    over = ledger.started("CacheCluster/app-cache", _create("elasticache.modify", time.time()), busy=True)
    assert over is not None and over[0] == "elasticache.create" and 59 < over[1] < 120
