"""The calls that change a table beside UpdateTable, each as AWS takes it: tags, point-in-time recovery (it
waits for continuous backups), TTL (one change an hour, recorded in the table's reconciler:ttl tag first)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from reconciler.aws.endpoints import aws_seconds
from reconciler.core.types import FieldChange, Live, NotYet
from reconciler.kinds.tags import tag_changes

if TYPE_CHECKING:
    pass


TTL_TAG = "reconciler:ttl"   # the agent's last UpdateTimeToLive on the table: <epoch>:<on|off>:<attribute>


TTL_HOUR_S = 3600            # AWS: one UpdateTimeToLive per table per hour


TTL_MARGIN_S = 120           # the tag is written just before the call: wait a little past the hour


TTL_REFUSED = "multiple times within a fixed interval"  # AWS's ValidationException for the hour


class Waits:
    """What AWS is doing to a table, as the reason a step must wait (None: the step may run now)."""

    def __init__(self, live: Live | None):
        extra = live.extra if live else {}
        self.status: str = extra.get("tableStatus", "ACTIVE")
        self.index_status: dict[str, str] = extra.get("indexStatus", {})
        self.ttl_status: str | None = extra.get("ttlStatus")
        self.backups_status: str | None = extra.get("backups")
        self.ttl_record = ttl_record(live.tags.get(TTL_TAG, "")) if live else None
        self.ttl_live = (live.state.get("ttl") or {}) if live else {}

    def exists(self) -> str | None:
        """Tags and items: AWS takes them unless the table is being created or deleted."""
        return f"table {self.status}" if self.status in ("CREATING", "DELETING") else None

    def table(self) -> str | None:
        """UpdateTable and friends: the table and every index must be ACTIVE."""
        if self.status != "ACTIVE":
            return f"table {self.status}"
        busy = [f"index {n} {s}" for n, s in self.index_status.items() if s != "ACTIVE"]
        return ", ".join(busy) or None

    def indexes(self) -> str | None:
        """Index changes: one at a time, each once the last has finished (AWS: LimitExceededException)."""
        return self.table()

    def backups(self) -> str | None:
        """Point-in-time recovery on: continuous backups must be available (a moment after a new table is ACTIVE)."""
        if self.status == "ACTIVE" and self.backups_status not in (None, "ENABLED"):
            return "continuous backups are not yet available (AWS turns them on shortly after a new table is ACTIVE)"
        return self.table()

    def ttl(self) -> str | None:
        if self.ttl_status in ("ENABLING", "DISABLING"):
            return f"TTL {self.ttl_status} (AWS takes one TTL change per table per hour)"
        held = self.ttl_held_until()
        if held is not None:
            return f"AWS takes one TTL change per table per hour: next at {clock(held)}"
        return self.table()

    def ttl_held_until(self) -> float | None:
        """When AWS takes the next UpdateTimeToLive, if the recorded last one still holds it (else None).

        The agent's own call holds it when the live TTL shows that call landed (a call recorded and then never
        made, by a killed agent, holds nothing); a refusal holds it in any case."""
        if self.ttl_record is None:
            return None
        at, asked = self.ttl_record
        until = at + aws_seconds(TTL_HOUR_S + TTL_MARGIN_S)
        if time.time() >= until:
            return None
        if asked is None or asked == (bool(self.ttl_live.get("enabled")), self.ttl_live.get("attribute")):
            return until
        return None


def ttl_record(value: str) -> tuple[float, tuple[bool, str | None] | None] | None:
    """The `reconciler:ttl` tag: (when, (enabled, attribute) asked) or (when, None) for a refusal; None if unset."""
    at, _, rest = value.partition(":")
    try:
        when = float(at)
    except ValueError:
        return None
    what, _, attribute = rest.partition(":")
    return (when, None) if what == "refused" else (when, (what == "on", attribute or None))


def clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(epoch))


def read_tags(ddb: Any, arn: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    args: dict[str, Any] = {"ResourceArn": arn}
    while True:
        out = ddb.list_tags_of_resource(**args)
        tags.update({t["Key"]: t["Value"] for t in out.get("Tags", [])})
        if not out.get("NextToken"):
            return tags
        args["NextToken"] = out["NextToken"]


def update_tags(ddb: Any, arn: str, changes: Sequence[FieldChange]) -> None:
    put, drop = tag_changes(changes)
    if put:
        ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": k, "Value": v} for k, v in put.items()])
    if drop:
        ddb.untag_resource(ResourceArn=arn, TagKeys=drop)


def set_pitr(ddb: Any, name: str, enabled: bool) -> None:
    try:
        ddb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": enabled})
    except ddb.exceptions.ContinuousBackupsUnavailableException:
        raise NotYet("continuous backups are not yet available (AWS turns them on shortly after a new table "
                     "is ACTIVE)") from None


def set_ttl(ddb: Any, arn: str, name: str, attribute: str, enabled: bool) -> None:
    """UpdateTimeToLive, recorded first in the table's tag (see the module's notes); AWS's hour is `pending`."""
    tag_ttl(ddb, arn, f"{time.time():.0f}:{'on' if enabled else 'off'}:{attribute}")
    try:
        ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": attribute, "Enabled": enabled})
    except ddb.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") != "ValidationException" or TTL_REFUSED not in str(error.get("Message")):
            raise
        now = time.time()
        tag_ttl(ddb, arn, f"{now:.0f}:refused")
        until = now + aws_seconds(TTL_HOUR_S + TTL_MARGIN_S)
        raise NotYet(f"AWS took another TTL change on this table within the last hour (not the agent's); AWS takes "
                     f"one per hour: next at {clock(until)}", until=until) from None


def tag_ttl(ddb: Any, arn: str, value: str) -> None:
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": TTL_TAG, "Value": value}])
