"""AWS's time in the sandbox: how long AWS typically takes, scaled, and transitions that finish
when that time has passed.

A resource that AWS keeps busy (a table CREATING, a cache `modifying`, a distribution
InProgress) is given a transition: its busy state now, and an effect that runs once the scaled
duration has passed (the state becomes ACTIVE/available/Deployed, a deferred change lands). The
effects run lazily, at the start of the next request to the sandbox (`settle`), so no timer
thread touches moto's models and `instant` (factor 0) finishes every transition at once.

Each request runs with its sandbox's clock as the thread's current one (`current()`), which the
service modules read; several sandboxes in one process keep their own time.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Duration:
    """How long AWS typically takes for one kind of work, and where that figure comes from."""

    seconds: float
    what: str
    source: str


# AWS's typical durations. Where AWS documents a figure it is cited; elsewhere the figure is a
# typical observed one, said so. docs/sandbox.md's table says the same (tests/unit/test_docs.py checks it).
DURATIONS: dict[str, Duration] = {
    "dynamodb.create": Duration(20, "CreateTable: CREATING -> ACTIVE",
                                "typical for an empty table (not documented)"),
    "dynamodb.billing": Duration(180, "billing mode switch: UPDATING",
                                 "DynamoDB Developer Guide, 'Considerations when switching capacity modes': "
                                 "'can take several minutes'"),
    "dynamodb.throughput": Duration(60, "provisioned throughput change: UPDATING",
                                    "typical (not documented)"),
    "dynamodb.index_create": Duration(300, "GSI CREATING (Backfilling) -> ACTIVE",
                                      "Developer Guide, 'Adding a global secondary index to an existing table': "
                                      "backfilling time depends on the table's size; typical for a small table"),
    "dynamodb.index_delete": Duration(60, "GSI DELETING -> gone", "typical (not documented)"),
    "dynamodb.delete": Duration(20, "DeleteTable: DELETING -> gone", "typical (not documented)"),
    "dynamodb.ttl": Duration(300, "UpdateTimeToLive: TTL ENABLING/DISABLING -> ENABLED/DISABLED",
                             "API Reference, UpdateTimeToLive: 'can take up to one hour'; the status usually "
                             "settles sooner (typical, not documented), while the hour below still holds"),
    "dynamodb.ttl_lock": Duration(3600, "after an UpdateTimeToLive: no other UpdateTimeToLive on that table",
                                  "API Reference, UpdateTimeToLive: 'Any additional UpdateTimeToLive calls for "
                                  "the same table during this one hour duration result in a ValidationException'"),
    "dynamodb.backups": Duration(10, "after CREATING -> ACTIVE: continuous backups become available",
                                 "observed, not documented: scalar-labs/scalardb#347, aws-amplify/amplify-backend"
                                 "#1654 ('Backups are being enabled for the table')"),
    "elasticache.create": Duration(600, "CreateReplicationGroup: creating -> available",
                                   "ElastiCache User Guide, 'Creating a cluster': typically ~10 minutes"),
    "elasticache.scale": Duration(1200, "node type change: modifying",
                                  "ElastiCache User Guide, 'Scaling node-based clusters': online scaling takes "
                                  "tens of minutes (not a fixed figure)"),
    "elasticache.upgrade": Duration(900, "engine version upgrade: modifying", "typical (not documented)"),
    "elasticache.replicas": Duration(600, "Increase/DecreaseReplicaCount: modifying, new members creating",
                                     "typical: a new node takes as long as a create"),
    "elasticache.settings": Duration(120, "security groups, automatic failover: modifying",
                                     "typical (not documented)"),
    "elasticache.auth": Duration(180, "AUTH token ROTATE/SET: modifying",
                                 "typical (not documented)"),
    "elasticache.snapshot": Duration(300, "CreateSnapshot: snapshotting", "typical for a small dataset"),
    "elasticache.delete": Duration(300, "DeleteReplicationGroup (final snapshot): deleting -> gone",
                                   "typical (not documented)"),
    "cloudfront.deploy": Duration(300, "Create/UpdateDistribution: InProgress -> Deployed",
                                  "CloudFront Developer Guide, 'Update a distribution': deploying to all edge "
                                  "locations takes minutes"),
    "cloudfront.invalidation": Duration(120, "CreateInvalidation: InProgress -> Completed",
                                        "typical (not documented)"),
}


def parse_aws_time(text: str | float | None) -> float:
    """`instant` -> 0, `aws` -> 1, `0.01` -> 0.01 (AWS's typical durations times the factor)."""
    if text is None:
        return 0.0
    if isinstance(text, int | float):
        factor = float(text)
    elif text.strip().lower() == "instant":
        return 0.0
    elif text.strip().lower() == "aws":
        return 1.0
    else:
        try:
            factor = float(text)
        except ValueError:
            raise ValueError(f"AWS time {text!r} is not 'instant', 'aws' or a factor such as 0.01") from None
    if not 0 <= factor <= 100:
        raise ValueError(f"AWS time factor {factor} is out of range (0 to 100)")
    return factor


class AwsTime:
    """One sandbox's clock: durations scaled by `factor`, transitions due at a monotonic time."""

    def __init__(self, factor: float = 0.0):
        self.factor = factor
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._lock = threading.RLock()

    def seconds(self, name: str) -> float:
        """The scaled duration of one kind of work (see DURATIONS)."""
        return DURATIONS[name].seconds * self.factor

    def after(self, name: str, effect: Callable[[], None]) -> None:
        """Run `effect` once the scaled duration of `name` has passed (at once when instant)."""
        delay = self.seconds(name)
        if delay <= 0:
            effect()
            return
        with self._lock:
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), effect))

    def settle(self) -> None:
        """Finish every transition whose time has come, in the order they fall due."""
        with self._lock:
            now = time.monotonic()
            while self._due and self._due[0][0] <= now:
                _, _, effect = heapq.heappop(self._due)
                effect()

    def finish_all(self) -> None:
        """Finish every transition now (a test's fast-forward)."""
        with self._lock:
            while self._due:
                heapq.heappop(self._due)[2]()

    def reset(self) -> None:
        """Forget every transition (the models they would change are being reset)."""
        with self._lock:
            self._due.clear()

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._due)


_INSTANT = AwsTime(0.0)
_local = threading.local()


def current() -> AwsTime:
    """The clock of the sandbox serving this thread's request (instant outside a request)."""
    return getattr(_local, "clock", None) or _INSTANT


@contextlib.contextmanager
def using(clock: AwsTime) -> Iterator[AwsTime]:
    """Serve one request on `clock`: transitions due by now are finished first."""
    previous = getattr(_local, "clock", None)
    _local.clock = clock
    try:
        clock.settle()
        yield clock
    finally:
        _local.clock = previous
