"""A single writer per stack: a lease on one DynamoDB item, as the DynamoDB Lock Client does it.

The item (key `LeaseName`) names its `owner` and carries a `version` that changes at every
renewal, and the lease duration the owner promised to renew within. Clocks are never compared
across machines:

- a free lease (no item, or one marked `released`) is taken with a conditional put;
- the holder renews it every third of the duration (conditional on owner and version);
- another agent that sees the *same* version for a whole duration, by its own clock, knows
  the holder stopped renewing, and takes the lease over with a put conditional on that version.

The holder counts its lease as valid for one duration after it *sent* its last successful
renewal, so it stops applying before anyone else may take over. Only the holder applies;
the others keep observing and reporting.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import botocore.exceptions
import structlog

from reconciler.aws.failures import describe_error, error_code
from reconciler.core.errors import ReconcilerError
from reconciler.core.types import LEASE_ROLE, OWNER_TAG, OWNER_VALUE, ROLE_TAG

if TYPE_CHECKING:
    from reconciler.aws.client import Aws

log = structlog.get_logger()

DEFAULT_TABLE = "reconciler-lease"
DEFAULT_NAME = "reconciler"
DEFAULT_DURATION_S = 60.0


def default_owner() -> str:
    """host:pid:random — the host is the container's or pod's name, which operators recognise."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class LeaseRecord:
    """Another owner's version, and when (by our clock) we first saw it."""

    owner: str
    version: str
    duration_s: float
    at: float


class Lease:
    """The lease `name` in `table`; `try_acquire()` and `renew()` each make one attempt."""

    def __init__(self, aws: Aws, *, table: str = DEFAULT_TABLE, name: str = DEFAULT_NAME,
                 duration_s: float = DEFAULT_DURATION_S, owner: str | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.aws, self.table, self.name, self.duration_s = aws, table, name, duration_s
        self.owner = owner or default_owner()
        self._clock = clock
        self._version: str | None = None
        self._valid_until = 0.0
        self._seen: LeaseRecord | None = None
        self._lock = threading.Lock()
        self._table_ready = False
        self.holder: str | None = None  # who holds it, as last read
        self.error: str | None = None  # why the last attempt failed, if it did (shown in /status)

    # ------------------------------------------------------------------ state

    @property
    def held(self) -> bool:
        """We hold the lease and renewed it recently enough that nobody else may take it yet."""
        with self._lock:
            return self._version is not None and self._clock() < self._valid_until

    def describe(self) -> dict[str, Any]:
        held = self.held
        return {"table": self.table, "name": self.name, "owner": self.owner,
                "role": "leader" if held else "follower", "holder": self.owner if held else self.holder,
                **({"error": self.error} if self.error else {})}

    # ------------------------------------------------------------------ the table

    def ensure_table(self) -> None:
        """Create the lease table when it does not exist (on-demand billing, tagged), and wait for it."""
        ddb = self.aws.client("dynamodb")
        try:
            status = "ACTIVE" if self.table_exists() else self._create_table(ddb)
            if status != "ACTIVE":
                ddb.get_waiter("table_exists").wait(TableName=self.table,
                                                    WaiterConfig={"Delay": 2, "MaxAttempts": 60})
        except botocore.exceptions.BotoCoreError as exc:  # unreachable endpoint, waiter gave up
            raise self._error(exc) from None
        self._table_ready = True

    def _create_table(self, ddb: Any) -> str:
        log.info("lease.create_table", table=self.table)
        try:
            return str(ddb.create_table(
                TableName=self.table, BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "LeaseName", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "LeaseName", "KeyType": "HASH"}],
                Tags=[{"Key": OWNER_TAG, "Value": OWNER_VALUE}, {"Key": ROLE_TAG, "Value": LEASE_ROLE}],
            )["TableDescription"]["TableStatus"])
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "ResourceInUseException":  # another agent created it just now
                return "CREATING"
            raise self._error(exc) from None

    def table_exists(self) -> bool:
        """True when the lease table exists (agents use a lease on this stack)."""
        try:
            self.aws.client("dynamodb").describe_table(TableName=self.table)
            return True
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return False
            raise self._error(exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(exc) from None

    # ------------------------------------------------------------------ acquire, renew, release

    def try_acquire(self) -> bool:
        """One attempt to become (or stay) the holder; True when we hold the lease. Creates the
        lease table first when it does not exist yet."""
        if not self._table_ready:
            self.ensure_table()
        if self._version is not None and self.renew():
            return True
        item = self._read()
        if item is None or item.get("released"):
            return self._take(item)
        owner, version = item["owner"], item["version"]
        duration_s = float(item.get("durationMs", self.duration_s * 1000)) / 1000
        self.holder = owner
        now = self._clock()
        if self._seen is None or self._seen.version != version:
            self._seen = LeaseRecord(owner, version, duration_s, now)
            return False
        if now - self._seen.at < duration_s:
            return False
        log.warning("lease.takeover", lease=self.name, previous=owner,
                    reason=f"not renewed for {duration_s:g}s")
        return self._take(item)

    def acquire_or_watch(self, sleep: Callable[[float], None] = time.sleep,
                         on_wait: Callable[[str, float], None] | None = None) -> bool:
        """Take the lease now, or watch the holder for one of its durations: True once we hold it;
        False as soon as the holder renews (it is alive) or another agent takes it first.
        `on_wait(holder, seconds)` is told before watching (a person at a terminal wants to know)."""
        if self.try_acquire():
            return True
        seen = self._seen
        if seen is None:
            return False
        log.info("lease.waiting", lease=self.name, holder=seen.owner, up_to_s=seen.duration_s)
        if on_wait:
            on_wait(seen.owner, seen.duration_s)
        poll_s = min(1.0, seen.duration_s / 4)
        while self._clock() - seen.at <= seen.duration_s + poll_s:
            sleep(poll_s)
            if self.try_acquire():
                return True
            if self._seen is None or self._seen.version != seen.version:
                return False
        return False

    def renew(self) -> bool:
        """Extend our lease (new version); False when it was lost to another agent."""
        with self._lock:
            old = self._version
        if old is None:
            return False
        new, sent = uuid.uuid4().hex, self._clock()
        try:
            self._update_ours(old, "SET #v = :new, renewedAt = :now, durationMs = :d",
                              {":new": {"S": new}, ":d": {"N": str(int(self.duration_s * 1000))}})
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                self._lost("another agent holds it now")
                return False
            log.warning("lease.renew_failed", lease=self.name, error=describe_error(exc))
            return self.held  # still valid until the last good renewal runs out
        except botocore.exceptions.BotoCoreError as exc:
            log.warning("lease.renew_failed", lease=self.name, error=describe_error(exc))
            return self.held
        with self._lock:
            self._version, self._valid_until = new, sent + self.duration_s
        return True

    def release(self) -> None:
        """Mark the lease free so a follower takes it at once (on a clean stop)."""
        with self._lock:
            version, self._version = self._version, None
        if version is None:
            return
        try:
            self._update_ours(version, "SET released = :t, renewedAt = :now", {":t": {"BOOL": True}})
            log.info("lease.released", lease=self.name)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            log.warning("lease.release_failed", lease=self.name, error=describe_error(exc),
                        effect=f"another agent takes over after {self.duration_s:g}s")

    def _update_ours(self, version: str, update: str, values: dict[str, Any]) -> None:
        """UpdateItem on the lease item, only while it is still ours at `version`."""
        self.aws.client("dynamodb").update_item(
            TableName=self.table, Key={"LeaseName": {"S": self.name}}, UpdateExpression=update,
            ConditionExpression="#o = :me AND #v = :old", ExpressionAttributeNames={"#v": "version", "#o": "owner"},
            ExpressionAttributeValues={**values, ":me": {"S": self.owner}, ":old": {"S": version},
                                       ":now": {"S": _now()}})

    def _read(self) -> dict[str, Any] | None:
        try:
            item = self.aws.client("dynamodb").get_item(
                TableName=self.table, Key={"LeaseName": {"S": self.name}}, ConsistentRead=True).get("Item")
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._error(exc) from None
        if item is None:
            return None
        return {k: next(iter(v.values())) for k, v in item.items()}

    def _take(self, item: dict[str, Any] | None) -> bool:
        version, sent = uuid.uuid4().hex, self._clock()
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(LeaseName)"} if item is None else
            {"ConditionExpression": "#v = :old", "ExpressionAttributeNames": {"#v": "version"},
             "ExpressionAttributeValues": {":old": {"S": item["version"]}}})
        try:
            self.aws.client("dynamodb").put_item(
                TableName=self.table, Item={
                    "LeaseName": {"S": self.name}, "owner": {"S": self.owner}, "version": {"S": version},
                    "durationMs": {"N": str(int(self.duration_s * 1000))}, "acquiredAt": {"S": _now()},
                    "renewedAt": {"S": _now()}}, **condition)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                self._seen = None  # somebody else was quicker: watch the new holder from scratch
                return False
            raise self._error(exc) from None
        except botocore.exceptions.BotoCoreError as exc:  # if the put landed, we take it over from ourselves later
            raise self._error(exc) from None
        with self._lock:
            self._version, self._valid_until = version, sent + self.duration_s
        self._seen, self.holder = None, self.owner
        log.info("lease.acquired", lease=self.name, owner=self.owner)
        return True

    def _lost(self, reason: str) -> None:
        with self._lock:
            self._version = None
        log.error("lease.lost", lease=self.name, reason=reason)

    def _error(self, exc: Exception) -> ReconcilerError:
        return ReconcilerError(f"lease {self.name!r} in DynamoDB table {self.table!r}: {describe_error(exc)}")


def hold_lease(lease: Lease, *, wait: bool, on_acquired: Callable[[], None] | None = None) -> Heartbeat:
    """Try to take the lease now (with `wait`, watch a holder for one of its durations; without,
    a failed attempt is only logged), then keep it renewed, or keep trying, in the background.
    `Heartbeat.stop()` ends this and releases the lease."""
    if wait:
        lease.acquire_or_watch()
    else:
        try:
            lease.try_acquire()
        except ReconcilerError as exc:  # AWS unreachable or not allowed: the heartbeat tries again
            lease.error = str(exc)
            log.warning("lease.check_failed", error=str(exc))
    return Heartbeat(lease, on_acquired).start()


class Heartbeat:
    """Keeps the lease: renews it while held, tries to take it while not, every third of its duration."""

    def __init__(self, lease: Lease, on_acquired: Callable[[], None] | None = None):
        self.lease, self.on_acquired = lease, on_acquired
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop renewing and release the lease, so a follower takes over at once."""
        self._stop.set()
        self._thread.join(timeout=10)
        self.lease.release()

    def _run(self) -> None:
        from reconciler.aws.inflight import count_as_background

        count_as_background()
        while not self._stop.wait(self.lease.duration_s / 3):
            was_held = self.lease.held
            try:
                held = self.lease.renew() if was_held else self.lease.try_acquire()
                self.lease.error = None
            except ReconcilerError as exc:
                self.lease.error = str(exc)
                log.warning("lease.check_failed", error=str(exc))
                continue
            if held and not was_held and self.on_acquired:
                self.on_acquired()
