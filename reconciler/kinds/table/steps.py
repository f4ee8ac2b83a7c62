"""The steps of a change to a table, one per call AWS accepts and in the order it accepts them: the billing
mode before the throughput, one index change at a time, point-in-time recovery and items before AWS gets busy,
TTL last (one change an hour)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from reconciler.core.types import FieldChange, Live, Step
from reconciler.kinds.table.calls import Waits, set_pitr, set_ttl
from reconciler.kinds.table.items import BATCH_WRITE, to_dynamo
from reconciler.kinds.table.shapes import (
    attribute_definitions,
    field_of,
    gsi_create,
    throughput,
    without,
)

if TYPE_CHECKING:
    from reconciler.kinds.table.protocol import TableLike


def capacity_steps(table: TableLike, ddb: Any, live: Live, by_field: dict[str, list[FieldChange]], want: dict[str, Any],
                    waits: Waits) -> list[Step]:
    """Billing mode first (with every index's throughput when it becomes PROVISIONED), then the
    table's throughput, then one index change per step: AWS takes them only in this order."""
    steps: list[Step] = []
    mode, live_mode = want["billingMode"], live.state.get("billingMode")
    switching = "billingMode" in by_field and mode != live_mode
    if switching:
        args: dict[str, Any] = {"TableName": table.name, "BillingMode": mode}
        if mode == "PROVISIONED":
            args["ProvisionedThroughput"] = throughput(want["capacity"])
            wanted = {g["name"]: g for g in want.get("globalSecondaryIndexes") or []}
            updates = [{"Update": {"IndexName": g["name"], "ProvisionedThroughput": throughput(
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
                          lambda: ddb().update_table(TableName=table.name,
                                                     ProvisionedThroughput=throughput(capacity)),
                          settles=True, wait=waits.table(), takes="dynamodb.throughput"))
    for change in by_field.get("globalSecondaryIndexes", []):
        steps += index_steps(table, ddb, change, switching, waits)
    return steps


def index_steps(table: TableLike, ddb: Any, change: FieldChange, switching: bool, waits: Waits) -> list[Step]:
    before, after = change.before, change.after
    steps: list[Step] = []
    if before and after and without(before, "capacity") == without(after, "capacity"):
        if switching or not after.get("capacity"):
            return []  # the billing switch sets (or drops) the index's throughput
        capacity = after["capacity"]
        return [Step(f"UpdateTable: index {after['name']} throughput read {capacity['read']}, "
                     f"write {capacity['write']}",
                     lambda: ddb().update_table(TableName=table.name, GlobalSecondaryIndexUpdates=[{"Update": {
                         "IndexName": after["name"], "ProvisionedThroughput": throughput(capacity)}}]),
                     settles=True, wait=waits.indexes(), takes="dynamodb.throughput")]
    if before:
        steps.append(Step(f"UpdateTable: delete index {before['name']}", lambda: ddb().update_table(
            TableName=table.name, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": before["name"]}}]),
            settles=True, wait=waits.indexes(), takes="dynamodb.index_delete"))
    if after:
        steps.append(Step(f"UpdateTable: create index {after['name']} (it backfills)", lambda: ddb().update_table(
            TableName=table.name, AttributeDefinitions=attribute_definitions(table.spec.spec),
            GlobalSecondaryIndexUpdates=[{"Create": gsi_create(after)}]), settles=True, wait=waits.indexes(),
            takes="dynamodb.index_create"))
    return steps


def setting_steps(table: TableLike, ddb: Any, live: Live | None, changes: list[FieldChange], want: dict[str, Any],
                   spec: dict[str, Any], waits: Waits | None = None) -> list[Step]:
    """Point-in-time recovery, items, then TTL (AWS takes one TTL change per hour)."""
    waits = waits or Waits(None)
    fields = {field_of(c.path) for c in changes}
    steps: list[Step] = []
    if "pointInTimeRecovery" in fields:
        on = bool(want["pointInTimeRecovery"])
        steps.append(Step(f"UpdateContinuousBackups: point-in-time recovery {'on' if on else 'off'}",
                          lambda: set_pitr(ddb(), table.name, on), wait=waits.backups() if on else waits.table()))
    declared = {table.item_key(item): item for item in spec.get("items") or []}
    keys = dict.fromkeys(c.entry for c in changes if field_of(c.path) == "items" and c.entry in declared)
    items = [declared[k] for k in keys]  # the spec's own values, exactly; a whole item per changed key
    if items:
        steps.append(Step(f"BatchWriteItem: {len(items)} item(s)", lambda: put_items(table, ddb(), items),
                          wait=waits.exists()))
    if "ttl" in fields:
        before = (live.state.get("ttl") if live else None) or {}
        after = want["ttl"]
        arn = (lambda: live.id) if live else (
            lambda: ddb().describe_table(TableName=table.name)["Table"]["TableArn"])
        if before.get("enabled") and before.get("attribute") != after["attribute"]:
            steps.append(Step(f"UpdateTimeToLive: disable TTL on {before['attribute']} (AWS then takes no "
                              "other TTL change on this table for an hour)",
                              lambda: set_ttl(ddb(), arn(), table.name, before["attribute"], False),
                              settles=True, wait=waits.ttl(), takes="dynamodb.ttl"))
        if after["enabled"] or before.get("enabled"):
            steps.append(Step(f"UpdateTimeToLive: {'enable' if after['enabled'] else 'disable'} TTL on "
                              f"{after['attribute']}",
                              lambda: set_ttl(ddb(), arn(), table.name, after["attribute"], after["enabled"]),
                              settles=True, wait=waits.ttl(), takes="dynamodb.ttl"))
    return steps


def put_items(table: TableLike, ddb: Any, items: Sequence[dict[str, Any]]) -> None:
    requests = [{"PutRequest": {"Item": to_dynamo(item)}} for item in items]
    for start in range(0, len(requests), BATCH_WRITE):
        pending = {table.name: requests[start:start + BATCH_WRITE]}
        delay = 0.05
        while pending:
            out = ddb.batch_write_item(RequestItems=pending)
            pending = out.get("UnprocessedItems") or {}
            if pending:
                time.sleep(delay)
                delay = min(delay * 2, 2)
