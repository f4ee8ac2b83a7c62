"""The work queue: each ref once, at the earliest time asked, due refs taken together, a per-ref gap, and
tickets released when the refs they wait for have been reconciled after them."""

from __future__ import annotations

import threading
import time

from reconciler.agent.queue import WorkQueue


def test_a_ref_is_queued_once_at_the_earliest_time_with_why():
    q = WorkQueue(min_gap_s=0, gather_s=0)
    q.add(["Table/A"], after_s=60, reason="requeue")
    q.add(["Table/A"], after_s=0, reason="event")
    q.add(["Table/A"], after_s=30, reason="schedule")  # later: changes nothing
    assert len(q) == 1
    batch = q.take(timeout=1)
    assert batch is not None and batch.refs == ["Table/A"] and batch.why() == ["event"]
    assert q.take(timeout=0.05) is None


def test_refs_due_together_are_taken_in_one_batch_and_later_ones_wait():
    q = WorkQueue(min_gap_s=0, gather_s=0.2)
    q.add(["Table/A", "Table/B"])
    q.add(["Table/C"], after_s=0.1)   # within the gathering window: same batch
    q.add(["Table/D"], after_s=5)
    batch = q.take(timeout=1)
    assert batch is not None and batch.refs == ["Table/A", "Table/B", "Table/C"]
    assert set(q.next_due()) == {"Table/D"} and 4 < q.next_due()["Table/D"] <= 5


def test_a_ref_is_handed_out_at_most_once_per_gap():
    q = WorkQueue(min_gap_s=0.3, gather_s=0)
    q.add(["Table/A"])
    first = q.take(timeout=1)
    q.done(first)
    started = time.monotonic()
    q.add(["Table/A"], reason="now")
    second = q.take(timeout=2)
    assert second is not None and time.monotonic() - started >= 0.25


def test_a_ticket_waits_for_a_reconcile_that_started_after_it():
    q = WorkQueue(min_gap_s=0, gather_s=0)
    q.add(["Table/A"])
    running = q.take(timeout=1)
    ticket = q.add(["Table/A"], reason="event")  # while A is being reconciled: that one does not count
    q.done(running)
    assert not ticket.wait(0.05)
    again = q.take(timeout=1)
    assert again is not None and again.refs == ["Table/A"]
    q.done(again)
    assert ticket.wait(0.1)


def test_take_wakes_when_something_is_added_and_close_ends_it():
    q = WorkQueue(min_gap_s=0, gather_s=0)
    got = []
    worker = threading.Thread(target=lambda: got.append(q.take()))
    worker.start()
    time.sleep(0.05)
    q.add(["Table/A"])
    worker.join(1)
    assert got and got[0].refs == ["Table/A"]
    closer = threading.Thread(target=lambda: got.append(q.take()))
    closer.start()
    q.close()
    closer.join(1)
    assert got[-1] is None


def test_forgotten_refs_are_gone_and_their_tickets_released():
    q = WorkQueue(min_gap_s=0, gather_s=0)
    ticket = q.add(["Table/Gone"], after_s=10)
    q.forget(["Table/Gone"])
    assert len(q) == 0 and ticket.wait(0.1)
