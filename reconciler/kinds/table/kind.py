"""DynamoDB: the `Table` kind's verbs. Beside it: its API shapes (shapes.py), its items (items.py), the steps
of a change (steps.py) and the calls they make (calls.py), validation (validate.py) and export (export.py).

AWS facts that shape this module (the sandbox enforces each, see reconciler/sandbox/dynamodb.py):
- Key schema (partition/sort key) cannot change in place: replacement.
- A new table is CREATING for a while; point-in-time recovery, TTL and items wait until it is
  ACTIVE. A deleted one is DELETING, and its name is not free until it is gone.
- UpdateTable needs the table and every index ACTIVE; one index Create or Delete per call; a new
  index is CREATING while it backfills (minutes to hours), and the next index change waits.
- Billing mode first, then index throughput: switching to PROVISIONED sends the throughput of the
  table and of every index in the same call, and nothing is sent twice (AWS refuses a throughput
  that "will not change"). PROVISIONED -> PAY_PER_REQUEST at most 4 times a day.
- Point-in-time recovery needs continuous backups, which AWS turns on a moment after a new table is
  ACTIVE (ContinuousBackupsUnavailableException before): the step waits for DescribeContinuousBackups
  to say ENABLED, and a refusal all the same is `pending`, not a failure.
- AWS takes one UpdateTimeToLive per table per hour, counted from the call ("Any additional
  UpdateTimeToLive calls for the same table during this one hour duration result in a
  ValidationException"), whatever the TTL status shows. Before each call the agent records it in the
  tag `reconciler:ttl` (`<epoch>:<on|off>:<attribute>`), so it (after a restart) and any other agent wait
  for the hour to pass; a refusal nonetheless (someone else changed TTL within the hour, which the agent
  cannot know) is recorded too (`<epoch>:refused`) and is `pending` until an hour after it. Changing the
  TTL attribute means disabling TTL, then enabling it on the new attribute, an hour apart.
- Each of those is one step; a step that AWS has to finish first is `pending` until a later cycle.
- Tags: TagResource/UntagResource on the table ARN; ListTagsOfResource is paginated.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from reconciler.core.diff import MISSING, Field
from reconciler.core.types import FieldChange, Live, Step
from reconciler.kinds import register
from reconciler.kinds.base import Resource
from reconciler.kinds.interfaces import EventMatched, Exportable, IamScoped, Validated
from reconciler.kinds.table.calls import Waits, read_tags, update_tags
from reconciler.kinds.table.export import export_tables
from reconciler.kinds.table.items import (
    batch_get,
    declared_keys,
    from_dynamo,
    read_declared_items,
)
from reconciler.kinds.table.shapes import (
    by_name,
    capacity_shape,
    field_of,
    gsi_shape,
    key_names,
    table_state,
    ttl_live,
    ttl_shape,
)
from reconciler.kinds.table.steps import capacity_steps, setting_steps
from reconciler.kinds.table.validate import check_table, create_args, create_requests
from reconciler.kinds.tags import observed_tags

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.spec.documents import Spec


@register
class Table(Resource, Validated, IamScoped, EventMatched, Exportable):
    """A DynamoDB table, its settings, tags and declared reference items."""

    kind = "Table"
    tagging_type = "dynamodb:table"  # its type in the Resource Groups Tagging API
    event_keys = {"dynamodb.amazonaws.com": ("tableName", "resourceArn")}
    service = "dynamodb"
    order = 20
    data_bearing = True
    fields = (
        Field("partitionKey", replace=True, api="KeySchema[HASH], AttributeDefinitions"),
        Field("sortKey", default=None, replace=True, api="KeySchema[RANGE], AttributeDefinitions"),
        Field("billingMode", default="PAY_PER_REQUEST", api="BillingModeSummary.BillingMode"),
        Field("capacity", api="ProvisionedThroughput"),
        Field("globalSecondaryIndexes", mode="keyed", key=by_name, api="GlobalSecondaryIndexes"),
        Field("pointInTimeRecovery", api="PointInTimeRecoveryDescription"),
        Field("deletionProtection", api="DeletionProtectionEnabled"),
        Field("ttl", api="TimeToLiveDescription"),
        Field("tags", default={}, mode="map", api="Tags"),
        Field("items", mode="keyed", prune=False, per_attribute=True, api="Items (by key)"),
    )
    iam_actions = (
        "dynamodb:DescribeTable", "dynamodb:ListTagsOfResource", "dynamodb:DescribeTimeToLive",
        "dynamodb:DescribeContinuousBackups", "dynamodb:BatchGetItem", "dynamodb:CreateTable",
        "dynamodb:UpdateTable", "dynamodb:DeleteTable", "dynamodb:UpdateTimeToLive",
        "dynamodb:UpdateContinuousBackups", "dynamodb:TagResource", "dynamodb:UntagResource",
        "dynamodb:BatchWriteItem", "dynamodb:CreateBackup", "dynamodb:Scan",
    )

    @classmethod
    def iam_resources(cls, spec: Spec | None) -> dict[str, list[str]]:
        name = spec.name if spec else "*"
        return {"dynamodb": [f"arn:aws:dynamodb:*:*:table/{name}", f"arn:aws:dynamodb:*:*:table/{name}/*"]}

    check_spec = staticmethod(check_table)  # the optional interfaces, from the kind's own modules
    requests = create_requests
    export = staticmethod(export_tables)

    # ------------------------------------------------------------------ spec

    @property
    def key_names(self) -> list[str]:
        return key_names(self.spec.spec)

    def item_key(self, item: dict[str, Any]) -> str:
        """How an item is named in plans: `UserId=u-101` (`,CreatedAt=5` with a sort key)."""
        return ",".join(f"{k}={item.get(k)}" for k in self.key_names)

    def desired(self) -> dict[str, Any]:
        spec = self.spec.spec
        state = super().desired()
        state["sortKey"] = spec.get("sortKey")
        state["billingMode"] = mode = spec.get("billingMode", "PAY_PER_REQUEST")
        state["capacity"] = capacity_shape(spec.get("capacity")) if mode == "PROVISIONED" else MISSING
        if "globalSecondaryIndexes" in spec:
            state["globalSecondaryIndexes"] = [
                gsi_shape(g, g.get("capacity") or spec.get("capacity"), mode)
                for g in spec["globalSecondaryIndexes"]
            ]
        if "ttl" in spec:
            state["ttl"] = ttl_shape(spec["ttl"])
        for name in ("pointInTimeRecovery", "deletionProtection", "items"):
            if name not in spec:
                state[name] = MISSING
        return state

    def field_table(self) -> tuple[Field, ...]:
        return tuple(replace(f, key=self.item_key) if f.name == "items" else f for f in self.fields)

    # ------------------------------------------------------------------ observe

    def observe(self, aws: Aws) -> Live | None:
        ddb = aws.client("dynamodb")
        try:
            table = ddb.describe_table(TableName=self.name)["Table"]
        except ddb.exceptions.ResourceNotFoundException:
            return None
        status = table.get("TableStatus", "ACTIVE")
        indexes = {g["IndexName"]: g.get("IndexStatus", "ACTIVE") for g in table.get("GlobalSecondaryIndexes", [])}
        spec = self.spec.spec
        state = table_state(table)
        ttl_status = backups_status = None
        if status not in ("CREATING", "DELETING"):  # AWS answers these reads only for a table that exists
            if "pointInTimeRecovery" in spec:
                backups = ddb.describe_continuous_backups(TableName=self.name)["ContinuousBackupsDescription"]
                pitr = backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
                state["pointInTimeRecovery"] = pitr == "ENABLED"
                backups_status = backups.get("ContinuousBackupsStatus")
            if "ttl" in spec:
                described = ddb.describe_time_to_live(TableName=self.name)["TimeToLiveDescription"]
                state["ttl"], ttl_status = ttl_live(described), described.get("TimeToLiveStatus")
            if spec.get("items") and state["partitionKey"] == spec["partitionKey"] and \
                    state["sortKey"] == spec.get("sortKey"):  # items by the spec's key; a new key means replace
                shared = (aws.cached("dynamodb:items", lambda: read_declared_items(ddb, self.specs))
                          if aws.listed_arns() is not None else None)  # a whole-set cycle: share the reads
                state["items"] = shared[self.name] if shared and self.name in shared else list(self._read_items(ddb))
        arn = table["TableArn"]

        def fill_tags(live: Live) -> None:  # once the cycle's tag listing is in (Live.finish)
            try:
                live.tags = live.state["tags"] = observed_tags(aws, self.ref, arn, lambda: read_tags(ddb, arn))
            except ddb.exceptions.ResourceNotFoundException:  # deleted since DescribeTable: gone, or nearly
                live.tags, live.state["tags"], live.deleting = {}, {}, True
                live.pending = live.pending or "table DELETING"

        busy = [f"table {status}"] if status != "ACTIVE" else []
        busy += [f"index {n} {s}" + (" (backfilling)" if s == "CREATING" else "")
                 for n, s in indexes.items() if s != "ACTIVE"]
        busy += [f"TTL {ttl_status}"] if ttl_status in ("ENABLING", "DISABLING") else []
        since = table.get("CreationDateTime") if status == "CREATING" else None
        return Live(id=arn, state=state, pending=", ".join(busy) or None, later=[fill_tags],
                    pending_since=since.isoformat() if hasattr(since, "isoformat") else None,
                    deleting=status == "DELETING",
                    extra={"deletionProtection": bool(table.get("DeletionProtectionEnabled")),
                           "tableStatus": status, "indexStatus": indexes, "ttlStatus": ttl_status,
                           "backups": backups_status})

    def item_keys(self) -> list[dict[str, Any]]:
        """The declared items' keys as AttributeValues, for BatchGetItem."""
        return declared_keys(self.spec.spec)

    def _read_items(self, ddb: Any) -> Iterator[dict[str, Any]]:
        for _table, raw in batch_get(ddb, [(self.name, key) for key in self.item_keys()]):
            yield from_dynamo(raw)

    # ------------------------------------------------------------------ create / update / delete

    def create(self, aws: Aws) -> None:
        """CreateTable only: the table is CREATING for a while; what AWS accepts only on an ACTIVE
        table (point-in-time recovery, TTL, items) comes in later steps."""
        aws.client("dynamodb").create_table(**create_args(self, ))

    def delete(self, aws: Aws, live: Live) -> None:
        aws.client("dynamodb").delete_table(TableName=self.name)

    def steps(self, aws: Aws, action: str, live: Live | None, changes: Sequence[FieldChange]) -> list[Step]:
        """One step per call AWS accepts, in the order it accepts them (see the module's notes)."""
        ddb = lambda: aws.client("dynamodb")  # noqa: E731
        want, spec = self.desired(), self.spec.spec
        if action == "create":
            indexes = [g["name"] for g in want.get("globalSecondaryIndexes") or []]
            later = [c for c in self.diff(None) if field_of(c.path) in ("pointInTimeRecovery", "ttl", "items")]
            return [Step(f"CreateTable {self.name}" + (f" with indexes {', '.join(indexes)}" if indexes else ""),
                         lambda: self.create(aws), settles=True, takes="dynamodb.create"),
                    *setting_steps(self, ddb, None, later, want, spec)]
        assert live is not None
        waits = Waits(live)
        if action == "delete":
            steps = []
            if live.extra.get("deletionProtection"):
                steps.append(Step("UpdateTable: deletion protection off", lambda: ddb().update_table(
                    TableName=self.name, DeletionProtectionEnabled=False), wait=waits.table()))
            return [*steps, Step(f"DeleteTable {self.name}", lambda: self.delete(aws, live), settles=True,
                                 wait=waits.table(), takes="dynamodb.delete")]
        by_field: dict[str, list[FieldChange]] = {}
        for c in changes:
            by_field.setdefault(field_of(c.path), []).append(c)
        steps = []
        if "tags" in by_field:
            steps.append(Step("TagResource/UntagResource: " + ", ".join(c.path.split(".", 2)[2]
                                                                      for c in by_field["tags"]),
                              lambda: update_tags(ddb(), live.id, by_field["tags"]), wait=waits.exists()))
        if "deletionProtection" in by_field:
            on = bool(want["deletionProtection"])
            steps.append(Step(f"UpdateTable: deletion protection {'on' if on else 'off'}", lambda: ddb().update_table(
                TableName=self.name, DeletionProtectionEnabled=on), wait=waits.table()))
        quick = [c for f in ("pointInTimeRecovery", "items") for c in by_field.get(f, [])]
        steps += setting_steps(self, ddb, live, quick, want, spec, waits)  # before AWS gets busy
        steps += capacity_steps(self, ddb, live, by_field, want, waits)
        steps += setting_steps(self, ddb, live, by_field.get("ttl", []), want, spec, waits)
        return steps

    def backup(self, aws: Aws, live: Live) -> str | None:
        name = f"reconciler-{self.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
        aws.client("dynamodb").create_backup(TableName=self.name, BackupName=name)
        return name

    def plan_notes(self, action: str, live: Live | None) -> list[str]:
        if action in ("replace", "delete"):
            return ["an on-demand backup (reconciler-<name>-<time>) is taken first; then the table and its items "
                    "are deleted"]
        return []


# ---------------------------------------------------------------------- shapes


# ---------------------------------------------------------------------- items


# ---------------------------------------------------------------------- calls


