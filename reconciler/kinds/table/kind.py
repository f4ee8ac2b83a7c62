"""DynamoDB: the `Table` kind.

Over 500 lines because one module per AWS service is the contract (DESIGN.md, "Resources"): the
steps AWS takes one at a time (billing, indexes, TTL), the items and export share the table's shapes.

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

import functools
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from reconciler.aws import constraints
from reconciler.aws.client import aws_seconds
from reconciler.core.diff import MISSING, Field
from reconciler.core.types import LEASE_ROLE, ROLE_TAG, FieldChange, Live, NotYet, Request, Step
from reconciler.kinds import register
from reconciler.kinds.base import Resource, tag_changes

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.kinds.exported import Exported
    from reconciler.spec.documents import Path_, Spec




@functools.cache
def _codec() -> tuple[Any, Any]:
    """boto3's AttributeValue serializer and deserializer (imported on first use: validate needs
    neither boto3 nor its import time)."""
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    return TypeSerializer(), TypeDeserializer()
_BATCH_GET = 100
_BATCH_WRITE = 25
TTL_TAG = "reconciler:ttl"   # the agent's last UpdateTimeToLive on the table: <epoch>:<on|off>:<attribute>
TTL_HOUR_S = 3600            # AWS: one UpdateTimeToLive per table per hour
TTL_MARGIN_S = 120           # the tag is written just before the call: wait a little past the hour
_TTL_REFUSED = "multiple times within a fixed interval"  # AWS's ValidationException for the hour


def _by_name(entry: dict[str, Any]) -> str:
    return str(entry["name"])


@register
class Table(Resource):
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
        Field("globalSecondaryIndexes", mode="keyed", key=_by_name, api="GlobalSecondaryIndexes"),
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

    # ------------------------------------------------------------------ spec

    @property
    def key_names(self) -> list[str]:
        names = [self.spec.spec["partitionKey"]["name"]]
        if self.spec.spec.get("sortKey"):
            names.append(self.spec.spec["sortKey"]["name"])
        return names

    def item_key(self, item: dict[str, Any]) -> str:
        """How an item is named in plans: `UserId=u-101` (`,CreatedAt=5` with a sort key)."""
        return ",".join(f"{k}={item.get(k)}" for k in self.key_names)

    def desired(self) -> dict[str, Any]:
        spec = self.spec.spec
        state = super().desired()
        state["sortKey"] = spec.get("sortKey")
        state["billingMode"] = mode = spec.get("billingMode", "PAY_PER_REQUEST")
        state["capacity"] = _capacity(spec.get("capacity")) if mode == "PROVISIONED" else MISSING
        if "globalSecondaryIndexes" in spec:
            state["globalSecondaryIndexes"] = [
                _gsi_shape(g, g.get("capacity") or spec.get("capacity"), mode)
                for g in spec["globalSecondaryIndexes"]
            ]
        if "ttl" in spec:
            state["ttl"] = _ttl_shape(spec["ttl"])
        for name in ("pointInTimeRecovery", "deletionProtection", "items"):
            if name not in spec:
                state[name] = MISSING
        return state

    def field_table(self) -> tuple[Field, ...]:
        return tuple(replace(f, key=self.item_key) if f.name == "items" else f for f in self.fields)

    @classmethod
    def check_spec(cls, spec: Spec, specs: Sequence[Spec]) -> list[tuple[Path_, str]]:
        s = spec.spec
        problems: list[tuple[Path_, str]] = []
        named = constraints.dynamodb_name(spec.name)
        if named:
            problems.append((("metadata", "name"), named.said()))
        mode = s.get("billingMode", "PAY_PER_REQUEST")
        if mode == "PROVISIONED" and "capacity" not in s:
            problems.append((("spec", "billingMode"), "PROVISIONED needs spec.capacity: {read: N, write: N}"))
        if mode == "PAY_PER_REQUEST" and "capacity" in s:
            problems.append((("spec", "capacity"), "capacity applies only to billingMode: PROVISIONED"))
        types = {s["partitionKey"]["name"]: s["partitionKey"]["type"]}
        if s.get("sortKey"):
            if s["sortKey"]["name"] in types:
                problems.append((("spec", "sortKey", "name"), "the sort key must differ from the partition key"))
            types[s["sortKey"]["name"]] = s["sortKey"]["type"]
        seen: set[str] = set()
        for i, gsi in enumerate(s.get("globalSecondaryIndexes") or []):
            path = ("spec", "globalSecondaryIndexes", i)
            if gsi["name"] in seen:
                problems.append(((*path, "name"), f"duplicate index name {gsi['name']!r}"))
            index_named = constraints.dynamodb_name(gsi["name"], "index")
            if index_named:
                problems.append(((*path, "name"), index_named.said()))
            seen.add(gsi["name"])
            for role in ("partitionKey", "sortKey"):
                attr = gsi.get(role)
                if attr and types.setdefault(attr["name"], attr["type"]) != attr["type"]:
                    problems.append(((*path, role, "type"),
                                     f"attribute {attr['name']!r} is {types[attr['name']]} elsewhere"))
            if (gsi.get("projection") == "INCLUDE") != bool(gsi.get("nonKeyAttributes")):
                problems.append(((*path, "projection"),
                                 "nonKeyAttributes goes with projection: INCLUDE, and it needs them"))
            if "capacity" in gsi and mode != "PROVISIONED":
                problems.append(((*path, "capacity"), "capacity applies only to billingMode: PROVISIONED"))
        problems += _check_items(s, types, [n for n in types if n in _key_names(s)])
        return problems

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
        state = _table_state(table)
        ttl_status = backups_status = None
        if status not in ("CREATING", "DELETING"):  # AWS answers these reads only for a table that exists
            if "pointInTimeRecovery" in spec:
                backups = ddb.describe_continuous_backups(TableName=self.name)["ContinuousBackupsDescription"]
                pitr = backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
                state["pointInTimeRecovery"] = pitr == "ENABLED"
                backups_status = backups.get("ContinuousBackupsStatus")
            if "ttl" in spec:
                described = ddb.describe_time_to_live(TableName=self.name)["TimeToLiveDescription"]
                state["ttl"], ttl_status = _ttl_live(described), described.get("TimeToLiveStatus")
            if spec.get("items") and state["partitionKey"] == spec["partitionKey"] and \
                    state["sortKey"] == spec.get("sortKey"):  # items by the spec's key; a new key means replace
                shared = (aws.cached("dynamodb:items", lambda: _read_declared_items(ddb, self.specs))
                          if aws.listed_arns() is not None else None)  # a whole-set cycle: share the reads
                state["items"] = shared[self.name] if shared and self.name in shared else list(self._read_items(ddb))
        arn = table["TableArn"]

        def fill_tags(live: Live) -> None:  # once the cycle's tag listing is in (Live.finish)
            try:
                live.tags = live.state["tags"] = self.observed_tags(aws, arn, lambda: _read_tags(ddb, arn))
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
        return [{k: _codec()[0].serialize(item[k]) for k in self.key_names} for item in self.spec.spec["items"]]

    def _read_items(self, ddb: Any) -> Iterator[dict[str, Any]]:
        for _table, raw in _batch_get(ddb, [(self.name, key) for key in self.item_keys()]):
            yield _from_dynamo(raw)

    # ------------------------------------------------------------------ create / update / delete

    def create(self, aws: Aws) -> None:
        """CreateTable only: the table is CREATING for a while; what AWS accepts only on an ACTIVE
        table (point-in-time recovery, TTL, items) comes in later steps."""
        aws.client("dynamodb").create_table(**self._create_args())

    def requests(self) -> list[Request]:
        """CreateTable as create() sends it (its tags: the spec's and the agent's; the TTL record comes later)."""
        args = self._create_args()
        tags = {t["Key"]: t["Value"] for t in args["Tags"]}
        return [Request("dynamodb", "CreateTable", args, tags=tags, kept=1 if "ttl" in self.spec.spec else 0)]

    def _create_args(self) -> dict[str, Any]:
        spec, want = self.spec.spec, self.desired()
        args: dict[str, Any] = {
            "TableName": self.name,
            "KeySchema": _key_schema(spec["partitionKey"], spec.get("sortKey")),
            "AttributeDefinitions": _attribute_definitions(spec),
            "BillingMode": want["billingMode"],
            "Tags": [{"Key": k, "Value": v} for k, v in want["tags"].items()],
        }
        if want["billingMode"] == "PROVISIONED":
            args["ProvisionedThroughput"] = _throughput(want["capacity"])
        if want.get("globalSecondaryIndexes"):
            args["GlobalSecondaryIndexes"] = [_gsi_create(g) for g in want["globalSecondaryIndexes"]]
        if "deletionProtection" in spec:
            args["DeletionProtectionEnabled"] = bool(spec["deletionProtection"])
        return args

    def delete(self, aws: Aws, live: Live) -> None:
        aws.client("dynamodb").delete_table(TableName=self.name)

    def steps(self, aws: Aws, action: str, live: Live | None, changes: Sequence[FieldChange]) -> list[Step]:
        """One step per call AWS accepts, in the order it accepts them (see the module's notes)."""
        ddb = lambda: aws.client("dynamodb")  # noqa: E731
        want, spec = self.desired(), self.spec.spec
        if action == "create":
            indexes = [g["name"] for g in want.get("globalSecondaryIndexes") or []]
            later = [c for c in self.diff(None) if _field_of(c.path) in ("pointInTimeRecovery", "ttl", "items")]
            return [Step(f"CreateTable {self.name}" + (f" with indexes {', '.join(indexes)}" if indexes else ""),
                         lambda: self.create(aws), settles=True, takes="dynamodb.create"),
                    *self._setting_steps(ddb, None, later, want, spec)]
        assert live is not None
        waits = _Waits(live)
        if action == "delete":
            steps = []
            if live.extra.get("deletionProtection"):
                steps.append(Step("UpdateTable: deletion protection off", lambda: ddb().update_table(
                    TableName=self.name, DeletionProtectionEnabled=False), wait=waits.table()))
            return [*steps, Step(f"DeleteTable {self.name}", lambda: self.delete(aws, live), settles=True,
                                 wait=waits.table(), takes="dynamodb.delete")]
        by_field: dict[str, list[FieldChange]] = {}
        for c in changes:
            by_field.setdefault(_field_of(c.path), []).append(c)
        steps = []
        if "tags" in by_field:
            steps.append(Step("TagResource/UntagResource: " + ", ".join(c.path.split(".", 2)[2]
                                                                      for c in by_field["tags"]),
                              lambda: _update_tags(ddb(), live.id, by_field["tags"]), wait=waits.exists()))
        if "deletionProtection" in by_field:
            on = bool(want["deletionProtection"])
            steps.append(Step(f"UpdateTable: deletion protection {'on' if on else 'off'}", lambda: ddb().update_table(
                TableName=self.name, DeletionProtectionEnabled=on), wait=waits.table()))
        quick = [c for f in ("pointInTimeRecovery", "items") for c in by_field.get(f, [])]
        steps += self._setting_steps(ddb, live, quick, want, spec, waits)  # before AWS gets busy
        steps += self._capacity_steps(ddb, live, by_field, want, waits)
        steps += self._setting_steps(ddb, live, by_field.get("ttl", []), want, spec, waits)
        return steps

    def _capacity_steps(self, ddb: Any, live: Live, by_field: dict[str, list[FieldChange]], want: dict[str, Any],
                        waits: _Waits) -> list[Step]:
        """Billing mode first (with every index's throughput when it becomes PROVISIONED), then the
        table's throughput, then one index change per step: AWS takes them only in this order."""
        steps: list[Step] = []
        mode, live_mode = want["billingMode"], live.state.get("billingMode")
        switching = "billingMode" in by_field and mode != live_mode
        if switching:
            args: dict[str, Any] = {"TableName": self.name, "BillingMode": mode}
            if mode == "PROVISIONED":
                args["ProvisionedThroughput"] = _throughput(want["capacity"])
                wanted = {g["name"]: g for g in want.get("globalSecondaryIndexes") or []}
                updates = [{"Update": {"IndexName": g["name"], "ProvisionedThroughput": _throughput(
                    (wanted.get(g["name"]) or {}).get("capacity") or want["capacity"])}}
                    for g in live.state.get("globalSecondaryIndexes") or []]
                if updates:
                    args["GlobalSecondaryIndexUpdates"] = updates
            steps.append(Step(f"UpdateTable: billing mode {live_mode} -> {mode}"
                              + (f" (read {want['capacity']['read']}, write {want['capacity']['write']}"
                                 f"{', and each index' if args.get('GlobalSecondaryIndexUpdates') else ''})"
                                 if mode == "PROVISIONED" else ""),
                              lambda: ddb().update_table(**args), settles=True, wait=waits.table(),
                              takes="dynamodb.billing"))
        elif "capacity" in by_field and mode == "PROVISIONED":
            capacity = want["capacity"]
            steps.append(Step(f"UpdateTable: throughput read {capacity['read']}, write {capacity['write']}",
                              lambda: ddb().update_table(TableName=self.name,
                                                         ProvisionedThroughput=_throughput(capacity)),
                              settles=True, wait=waits.table(), takes="dynamodb.throughput"))
        for change in by_field.get("globalSecondaryIndexes", []):
            steps += self._index_steps(ddb, change, switching, waits)
        return steps

    def _index_steps(self, ddb: Any, change: FieldChange, switching: bool, waits: _Waits) -> list[Step]:
        before, after = change.before, change.after
        steps: list[Step] = []
        if before and after and _without(before, "capacity") == _without(after, "capacity"):
            if switching or not after.get("capacity"):
                return []  # the billing switch sets (or drops) the index's throughput
            capacity = after["capacity"]
            return [Step(f"UpdateTable: index {after['name']} throughput read {capacity['read']}, "
                         f"write {capacity['write']}",
                         lambda: ddb().update_table(TableName=self.name, GlobalSecondaryIndexUpdates=[{"Update": {
                             "IndexName": after["name"], "ProvisionedThroughput": _throughput(capacity)}}]),
                         settles=True, wait=waits.indexes(), takes="dynamodb.throughput")]
        if before:
            steps.append(Step(f"UpdateTable: delete index {before['name']}", lambda: ddb().update_table(
                TableName=self.name, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": before["name"]}}]),
                settles=True, wait=waits.indexes(), takes="dynamodb.index_delete"))
        if after:
            steps.append(Step(f"UpdateTable: create index {after['name']} (it backfills)", lambda: ddb().update_table(
                TableName=self.name, AttributeDefinitions=_attribute_definitions(self.spec.spec),
                GlobalSecondaryIndexUpdates=[{"Create": _gsi_create(after)}]), settles=True, wait=waits.indexes(),
                takes="dynamodb.index_create"))
        return steps

    def _setting_steps(self, ddb: Any, live: Live | None, changes: list[FieldChange], want: dict[str, Any],
                       spec: dict[str, Any], waits: _Waits | None = None) -> list[Step]:
        """Point-in-time recovery, items, then TTL (AWS takes one TTL change per hour)."""
        waits = waits or _Waits(None)
        fields = {_field_of(c.path) for c in changes}
        steps: list[Step] = []
        if "pointInTimeRecovery" in fields:
            on = bool(want["pointInTimeRecovery"])
            steps.append(Step(f"UpdateContinuousBackups: point-in-time recovery {'on' if on else 'off'}",
                              lambda: _set_pitr(ddb(), self.name, on), wait=waits.backups() if on else waits.table()))
        declared = {self.item_key(item): item for item in spec.get("items") or []}
        keys = dict.fromkeys(c.entry for c in changes if _field_of(c.path) == "items" and c.entry in declared)
        items = [declared[k] for k in keys]  # the spec's own values, exactly; a whole item per changed key
        if items:
            steps.append(Step(f"BatchWriteItem: {len(items)} item(s)", lambda: self._put_items(ddb(), items),
                              wait=waits.exists()))
        if "ttl" in fields:
            before = (live.state.get("ttl") if live else None) or {}
            after = want["ttl"]
            arn = (lambda: live.id) if live else (
                lambda: ddb().describe_table(TableName=self.name)["Table"]["TableArn"])
            if before.get("enabled") and before.get("attribute") != after["attribute"]:
                steps.append(Step(f"UpdateTimeToLive: disable TTL on {before['attribute']} (AWS then takes no "
                                  "other TTL change on this table for an hour)",
                                  lambda: _set_ttl(ddb(), arn(), self.name, before["attribute"], False),
                                  settles=True, wait=waits.ttl(), takes="dynamodb.ttl"))
            if after["enabled"] or before.get("enabled"):
                steps.append(Step(f"UpdateTimeToLive: {'enable' if after['enabled'] else 'disable'} TTL on "
                                  f"{after['attribute']}",
                                  lambda: _set_ttl(ddb(), arn(), self.name, after["attribute"], after["enabled"]),
                                  settles=True, wait=waits.ttl(), takes="dynamodb.ttl"))
        return steps

    def _put_items(self, ddb: Any, items: Sequence[dict[str, Any]]) -> None:
        requests = [{"PutRequest": {"Item": _to_dynamo(item)}} for item in items]
        for start in range(0, len(requests), _BATCH_WRITE):
            pending = {self.name: requests[start:start + _BATCH_WRITE]}
            delay = 0.05
            while pending:
                out = ddb.batch_write_item(RequestItems=pending)
                pending = out.get("UnprocessedItems") or {}
                if pending:
                    time.sleep(delay)
                    delay = min(delay * 2, 2)

    def backup(self, aws: Aws, live: Live) -> str | None:
        name = f"reconciler-{self.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
        aws.client("dynamodb").create_backup(TableName=self.name, BackupName=name)
        return name

    def plan_notes(self, action: str, live: Live | None) -> list[str]:
        if action in ("replace", "delete"):
            return ["an on-demand backup (reconciler-<name>-<time>) is taken first; then the table and its items "
                    "are deleted"]
        return []

    @classmethod
    def export(cls, aws: Aws, options: dict[str, Any]) -> list[Exported]:
        from reconciler.kinds.exported import Exported, user_tags

        ddb = aws.client("dynamodb")
        out = []
        for page in ddb.get_paginator("list_tables").paginate():
            for name in page.get("TableNames", []):
                table = ddb.describe_table(TableName=name)["Table"]
                state, tags = _table_state(table), _read_tags(ddb, table["TableArn"])
                if tags.get(ROLE_TAG) == LEASE_ROLE:
                    out.append(Exported("Table", name, {}, tags, skipped=True, warnings=[
                        "the agents' single-writer lease table: part of the agent, not of the stack; not exported"]))
                    continue
                spec: dict[str, Any] = {"partitionKey": state["partitionKey"]}
                if state["sortKey"]:
                    spec["sortKey"] = state["sortKey"]
                if state["billingMode"] == "PROVISIONED":
                    spec["billingMode"] = "PROVISIONED"
                    spec["capacity"] = state["capacity"]
                gsis = []
                for g in state["globalSecondaryIndexes"]:
                    entry = {k: v for k, v in g.items() if not (k == "projection" and v == "ALL")}
                    if entry.get("capacity") == state.get("capacity"):
                        entry.pop("capacity", None)
                    gsis.append(entry)
                if gsis:
                    spec["globalSecondaryIndexes"] = gsis
                backups = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
                if backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus") == "ENABLED":
                    spec["pointInTimeRecovery"] = True
                if state["deletionProtection"]:
                    spec["deletionProtection"] = True
                ttl = _ttl_live(ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"])
                if ttl and ttl["enabled"]:
                    spec["ttl"] = {"attribute": ttl["attribute"]}
                if user_tags(tags):
                    spec["tags"] = user_tags(tags)
                item = Exported("Table", name, spec, tags)
                for setting, what in (("StreamSpecification", "DynamoDB Streams"),
                                      ("Replicas", "global table replicas"),
                                      ("LocalSecondaryIndexes", "local secondary indexes")):
                    value = table.get(setting)
                    if value and (not isinstance(value, dict) or value.get("StreamEnabled")):
                        item.warnings.append(f"{setting}: {what} cannot be expressed in a spec yet; kept as is, "
                                             "not managed")
                if options.get("with_items"):
                    item.spec["items"] = _export_items(ddb, name, options.get("item_limit", 100), item.warnings)
                out.append(item)
        return out


class _Waits:
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
            return f"AWS takes one TTL change per table per hour: next at {_clock(held)}"
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


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(epoch))


# ---------------------------------------------------------------------- shapes


def _key_names(spec: dict[str, Any]) -> list[str]:
    names = [spec["partitionKey"]["name"]]
    if spec.get("sortKey"):
        names.append(spec["sortKey"]["name"])
    return names


def _batch_get(ddb: Any, keys: list[tuple[str, dict[str, Any]]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(table, item) for every (table, key) found: BatchGetItem, up to 100 keys a request across tables,
    consistent reads, unprocessed keys asked again."""
    for start in range(0, len(keys), _BATCH_GET):
        request: dict[str, Any] = {}
        for table, key in keys[start:start + _BATCH_GET]:
            request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(key)
        while request:
            out = ddb.batch_get_item(RequestItems=request)
            for table, items in out.get("Responses", {}).items():
                for raw in items:
                    yield table, raw
            request = out.get("UnprocessedKeys") or {}
            if request:
                time.sleep(0.05)


def _read_declared_items(ddb: Any, specs: Sequence[Spec]) -> dict[str, list[dict[str, Any]]] | None:
    """The declared items of every table of the spec set, in shared BatchGetItem requests (one for a
    small stack, instead of one per table). None when that fails (a table missing, being created, or
    keyed differently from its spec: AWS then refuses the whole request): each table reads its own."""
    tables = [Table(s, specs) for s in specs if s.kind == "Table" and s.spec.get("items")
              and s.metadata.state != "absent"]
    found: dict[str, list[dict[str, Any]]] = {t.name: [] for t in tables}
    try:
        for table, raw in _batch_get(ddb, [(t.name, key) for t in tables for key in t.item_keys()]):
            found[table].append(_from_dynamo(raw))
    except ddb.exceptions.ClientError:
        return None
    return found


def _capacity(raw: dict[str, Any] | None) -> dict[str, int] | None:
    return {"read": int(raw["read"]), "write": int(raw["write"])} if raw else None


def _gsi_shape(gsi: dict[str, Any], capacity: dict[str, Any] | None, mode: str) -> dict[str, Any]:
    shape: dict[str, Any] = {"name": gsi["name"], "partitionKey": gsi["partitionKey"]}
    if gsi.get("sortKey"):
        shape["sortKey"] = gsi["sortKey"]
    shape["projection"] = gsi.get("projection", "ALL")
    if shape["projection"] == "INCLUDE":
        shape["nonKeyAttributes"] = sorted(gsi.get("nonKeyAttributes") or [])
    if mode == "PROVISIONED":
        shape["capacity"] = _capacity(capacity)
    return shape


def _ttl_shape(raw: dict[str, Any]) -> dict[str, Any]:
    return {"attribute": raw["attribute"], "enabled": bool(raw.get("enabled", True))}


def _ttl_live(desc: dict[str, Any]) -> dict[str, Any] | None:
    status = desc.get("TimeToLiveStatus", "DISABLED")
    if status in ("DISABLED",) and not desc.get("AttributeName"):
        return {"attribute": None, "enabled": False}
    return {"attribute": desc.get("AttributeName"), "enabled": status in ("ENABLED", "ENABLING")}


def _table_state(table: dict[str, Any]) -> dict[str, Any]:
    """describe_table's answer in the spec's shape."""
    types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}

    def attr(schema: list[dict[str, Any]], role: str) -> dict[str, str] | None:
        name = next((k["AttributeName"] for k in schema if k["KeyType"] == role), None)
        return {"name": name, "type": types.get(name, "S")} if name else None

    mode = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
    state: dict[str, Any] = {
        "partitionKey": attr(table["KeySchema"], "HASH"),
        "sortKey": attr(table["KeySchema"], "RANGE"),
        "billingMode": mode,
        "deletionProtection": bool(table.get("DeletionProtectionEnabled", False)),
    }
    if mode == "PROVISIONED":
        state["capacity"] = _live_capacity(table.get("ProvisionedThroughput"))
    gsis = []
    for g in table.get("GlobalSecondaryIndexes", []):
        projection = g.get("Projection", {})
        shape: dict[str, Any] = {"name": g["IndexName"], "partitionKey": attr(g["KeySchema"], "HASH")}
        if attr(g["KeySchema"], "RANGE"):
            shape["sortKey"] = attr(g["KeySchema"], "RANGE")
        shape["projection"] = projection.get("ProjectionType", "ALL")
        if shape["projection"] == "INCLUDE":
            shape["nonKeyAttributes"] = sorted(projection.get("NonKeyAttributes", []))
        if mode == "PROVISIONED":
            shape["capacity"] = _live_capacity(g.get("ProvisionedThroughput"))
        gsis.append(shape)
    state["globalSecondaryIndexes"] = gsis
    return state


def _live_capacity(raw: dict[str, Any] | None) -> dict[str, int] | None:
    if not raw:
        return None
    return {"read": int(raw.get("ReadCapacityUnits", 0)), "write": int(raw.get("WriteCapacityUnits", 0))}


def _key_schema(pk: dict[str, str], sk: dict[str, str] | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": pk["name"], "KeyType": "HASH"}]
    if sk:
        schema.append({"AttributeName": sk["name"], "KeyType": "RANGE"})
    return schema


def _attribute_definitions(spec: dict[str, Any]) -> list[dict[str, str]]:
    """Every key attribute of the table and its indexes, once each."""
    attrs: dict[str, str] = {}
    for holder in [spec, *(spec.get("globalSecondaryIndexes") or [])]:
        for role in ("partitionKey", "sortKey"):
            if holder.get(role):
                attrs.setdefault(holder[role]["name"], holder[role]["type"])
    return [{"AttributeName": n, "AttributeType": t} for n, t in attrs.items()]


def _throughput(capacity: dict[str, int]) -> dict[str, int]:
    return {"ReadCapacityUnits": capacity["read"], "WriteCapacityUnits": capacity["write"]}


def _gsi_create(gsi: dict[str, Any]) -> dict[str, Any]:
    projection: dict[str, Any] = {"ProjectionType": gsi["projection"]}
    if gsi["projection"] == "INCLUDE":
        projection["NonKeyAttributes"] = gsi["nonKeyAttributes"]
    out: dict[str, Any] = {
        "IndexName": gsi["name"],
        "KeySchema": _key_schema(gsi["partitionKey"], gsi.get("sortKey")),
        "Projection": projection,
    }
    if gsi.get("capacity"):
        out["ProvisionedThroughput"] = _throughput(gsi["capacity"])
    return out


def _without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


def _field_of(path: str) -> str:
    """`spec.tags.team` -> `tags`; `spec.items[UserId=1]` -> `items`."""
    return path.split(".", 2)[1].split("[", 1)[0]


# ---------------------------------------------------------------------- items


def _to_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _codec()[0].serialize(v) for k, v in item.items()}


def _from_dynamo(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_codec()[1].deserialize(v)) for k, v in raw.items()}


def _plain(value: Any) -> Any:
    """boto3's deserialized value as a plain one: Binary -> bytes, inside maps, lists and sets too."""
    from boto3.dynamodb.types import Binary

    if isinstance(value, Binary):
        return bytes(value.value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return {_plain(v) for v in value}
    return value


_TYPE_OF = {"S": str, "N": (int, Decimal), "B": bytes}


def _check_items(spec: dict[str, Any], types: dict[str, str], keys: list[str]) -> list[tuple[Path_, str]]:
    problems: list[tuple[Path_, str]] = []
    seen: dict[tuple[Any, ...], int] = {}
    for i, item in enumerate(spec.get("items") or []):
        path: Path_ = ("spec", "items", i)
        for key in keys:
            value = item.get(key)
            expected = _TYPE_OF[types[key]]
            if value is None:
                problems.append((path, f"item lacks its key attribute {key!r}"))
            elif isinstance(value, bool) or not isinstance(value, expected):
                problems.append(((*path, key), f"key {key!r} is of type {types[key]}; got {value!r}"))
        ident = tuple(repr(item.get(k)) for k in keys)
        if ident in seen:
            problems.append((path, f"duplicate item key (same as items[{seen[ident]}])"))
        seen.setdefault(ident, i)
        for refusal in constraints.item_refusals(item, keys):
            problems.append((path, refusal.said()))
        try:
            _to_dynamo(item)
        except ArithmeticError:  # boto3's DynamoDB decimal context: Overflow, Underflow, Inexact...
            problems.append((path, "a number cannot be stored in DynamoDB: at most 38 significant digits, "
                                   "magnitude between 1E-130 and 9.99E+125"))
        except (TypeError, ValueError) as exc:
            problems.append((path, f"cannot be stored in DynamoDB: {exc}"))
    return problems


# ---------------------------------------------------------------------- calls


def _export_items(ddb: Any, name: str, limit: int, warnings: list[str]) -> list[dict[str, Any]]:
    """Up to `limit` items, as plain values; a larger table is said, not silently cut."""
    items: list[dict[str, Any]] = []
    args: dict[str, Any] = {"TableName": name, "Limit": min(limit + 1, 1000)}
    while len(items) <= limit:
        page = ddb.scan(**args)
        items += [_from_dynamo(raw) for raw in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            break
        args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    if len(items) > limit:
        warnings.append(f"spec.items: the table has more than {limit} items; only {limit} were exported "
                        "(items in a spec are reference data, not a backup; raise --item-limit if you mean it)")
    return items[:limit]


def _read_tags(ddb: Any, arn: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    args: dict[str, Any] = {"ResourceArn": arn}
    while True:
        out = ddb.list_tags_of_resource(**args)
        tags.update({t["Key"]: t["Value"] for t in out.get("Tags", [])})
        if not out.get("NextToken"):
            return tags
        args["NextToken"] = out["NextToken"]


def _update_tags(ddb: Any, arn: str, changes: Sequence[FieldChange]) -> None:
    put, drop = tag_changes(changes)
    if put:
        ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": k, "Value": v} for k, v in put.items()])
    if drop:
        ddb.untag_resource(ResourceArn=arn, TagKeys=drop)


def _set_pitr(ddb: Any, name: str, enabled: bool) -> None:
    try:
        ddb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": enabled})
    except ddb.exceptions.ContinuousBackupsUnavailableException:
        raise NotYet("continuous backups are not yet available (AWS turns them on shortly after a new table "
                     "is ACTIVE)") from None


def _set_ttl(ddb: Any, arn: str, name: str, attribute: str, enabled: bool) -> None:
    """UpdateTimeToLive, recorded first in the table's tag (see the module's notes); AWS's hour is `pending`."""
    _tag_ttl(ddb, arn, f"{time.time():.0f}:{'on' if enabled else 'off'}:{attribute}")
    try:
        ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": attribute, "Enabled": enabled})
    except ddb.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") != "ValidationException" or _TTL_REFUSED not in str(error.get("Message")):
            raise
        now = time.time()
        _tag_ttl(ddb, arn, f"{now:.0f}:refused")
        until = now + aws_seconds(TTL_HOUR_S + TTL_MARGIN_S)
        raise NotYet(f"AWS took another TTL change on this table within the last hour (not the agent's); AWS takes "
                     f"one per hour: next at {_clock(until)}", until=until) from None


def _tag_ttl(ddb: Any, arn: str, value: str) -> None:
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": TTL_TAG, "Value": value}])
