"""The single-writer lease against a real DynamoDB API (the sandbox), on injected clocks: who may
take it, when, and what the holder learns when it was taken over."""

from __future__ import annotations

import pytest

from reconciler.core.types import OWNER_TAG, ROLE_TAG
from tests.conftest import wait_for


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def make_lease(aws, monkeypatch):
    for key, value in aws.env.items():
        monkeypatch.setenv(key, value)
    from reconciler.aws.client import Aws
    from reconciler.engine.lease import Lease

    def make(owner: str, duration_s: float = 30) -> tuple[Lease, Clock]:
        clock = Clock()
        lease = Lease(Aws(), table="locks", name="stack", duration_s=duration_s, owner=owner, clock=clock)
        lease.ensure_table()
        return lease, clock

    return make


def item(aws) -> dict[str, str]:
    got = aws.client("dynamodb").get_item(TableName="locks", Key={"LeaseName": {"S": "stack"}})["Item"]
    return {k: next(iter(v.values())) for k, v in got.items()}


def test_the_table_is_created_once_tagged_as_the_agents_own(make_lease, aws):
    make_lease("a")
    make_lease("b")  # a second agent finds it and creates nothing
    ddb = aws.client("dynamodb")
    assert ddb.list_tables()["TableNames"] == ["locks"]
    arn = ddb.describe_table(TableName="locks")["Table"]["TableArn"]
    tags = {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}
    assert tags == {OWNER_TAG: "reconciler", ROLE_TAG: "lease"}


def test_only_one_of_two_agents_gets_a_free_lease(make_lease, aws):
    a, _ = make_lease("agent-a")
    b, _ = make_lease("agent-b")
    assert a.try_acquire() is True
    assert b.try_acquire() is False
    assert a.held and not b.held
    assert b.holder == "agent-a" and item(aws)["owner"] == "agent-a"


def test_a_renewing_holder_is_never_taken_over(make_lease):
    a, a_clock = make_lease("agent-a", duration_s=30)
    b, b_clock = make_lease("agent-b", duration_s=30)
    assert a.try_acquire()
    for _ in range(10):  # five minutes of renewals every 30 s, by both clocks
        assert b.try_acquire() is False
        a_clock.now += 20
        b_clock.now += 20
        assert a.renew() is True
    assert a.held and not b.held


def test_a_silent_holder_is_taken_over_after_one_duration_by_the_watchers_clock(make_lease, aws):
    a, a_clock = make_lease("agent-a", duration_s=30)
    b, b_clock = make_lease("agent-b", duration_s=30)
    assert a.try_acquire()
    assert b.try_acquire() is False  # first sight of a's version
    b_clock.now += 29
    assert b.try_acquire() is False  # not yet a whole duration
    b_clock.now += 1
    assert b.try_acquire() is True
    assert item(aws)["owner"] == "agent-b"
    # The old holder had stopped renewing: by its own clock its lease ran out, and renewing fails.
    a_clock.now += 30
    assert not a.held
    assert a.renew() is False and not a.held
    assert b.held


def test_the_holder_stops_counting_on_its_lease_one_duration_after_its_last_renewal(make_lease):
    a, clock = make_lease("agent-a", duration_s=30)
    assert a.try_acquire()
    clock.now += 29.9
    assert a.held
    clock.now += 0.1
    assert not a.held  # a follower may take over from now on: apply must stop
    assert a.try_acquire() is True  # nobody did, so renewing the same version works


def test_a_released_lease_is_taken_at_once(make_lease, aws):
    a, _ = make_lease("agent-a")
    b, _ = make_lease("agent-b")
    assert a.try_acquire()
    a.release()
    assert item(aws)["released"] is True and not a.held
    assert b.try_acquire() is True and item(aws)["owner"] == "agent-b"


def test_watching_a_live_holder_gives_up_as_soon_as_it_renews(make_lease):
    a, _ = make_lease("agent-a", duration_s=30)
    b, b_clock = make_lease("agent-b", duration_s=30)
    assert a.try_acquire()
    naps: list[float] = []

    def nap(seconds: float) -> None:  # while b watches, a renews once
        naps.append(seconds)
        b_clock.now += seconds
        if len(naps) == 3:
            a.renew()

    assert b.acquire_or_watch(sleep=nap) is False
    assert len(naps) == 3  # it stopped watching at the renewal, not after the whole duration


def test_watching_a_dead_holder_takes_the_lease_after_its_duration(make_lease):
    a, _ = make_lease("agent-a", duration_s=8)
    b, b_clock = make_lease("agent-b", duration_s=30)
    assert a.try_acquire()

    def nap(seconds: float) -> None:
        b_clock.now += seconds

    assert b.acquire_or_watch(sleep=nap) is True
    assert 8 <= b_clock.now <= 10  # the holder's duration (8 s, from the item), not the watcher's own


def test_heartbeat_calls_are_counted_apart_from_the_cycles_and_read_safely(make_lease, aws):
    """The heartbeat renews on its own thread while the cycle reads its call counts: those counts never
    include the heartbeat's calls, and reading them while the heartbeat counts never fails (before the
    fix: 'dictionary changed size during iteration', and lease calls in the cycle's figures)."""
    import threading

    from reconciler.engine.lease import Heartbeat

    lease, _ = make_lease("agent-a", duration_s=0.3)  # renews every 0.1 s
    assert lease.try_acquire()
    handle = lease.aws
    handle.reset_counts()
    heartbeat = Heartbeat(lease).start()
    errors: list[BaseException] = []
    done = threading.Event()

    def read_counts() -> None:
        try:
            while not done.is_set():
                sum(handle.call_counts().values())
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=read_counts)
    reader.start()
    ddb = handle.client("dynamodb")
    for _ in range(5):
        ddb.describe_table(TableName="locks")  # the cycle's own calls
    wait_for(lambda: sum(handle.background_calls.values()) >= 3, timeout=20, what="three renewals")
    done.set()
    reader.join()
    counted = handle.call_counts()
    heartbeat.stop()
    assert errors == []
    assert counted == {("dynamodb", "DescribeTable"): 5}
    assert sum(handle.take_background_counts().values()) >= 3  # the renewals, counted apart
