"""`reconciler export` for tables: every table as the spec a person would write (the agents' lease table left
out), with what a spec cannot say yet named in a warning."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.core.types import LEASE_ROLE, ROLE_TAG
from reconciler.kinds.table.calls import read_tags
from reconciler.kinds.table.items import export_items
from reconciler.kinds.table.shapes import (
    table_state,
    ttl_live,
)

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.kinds.exported import Exported


def export_tables(aws: Aws, options: dict[str, Any]) -> list[Exported]:
    from reconciler.kinds.exported import Exported, user_tags

    ddb = aws.client("dynamodb")
    out = []
    for page in ddb.get_paginator("list_tables").paginate():
        for name in page.get("TableNames", []):
            table = ddb.describe_table(TableName=name)["Table"]
            state, tags = table_state(table), read_tags(ddb, table["TableArn"])
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
            ttl = ttl_live(ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"])
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
                item.spec["items"] = export_items(ddb, name, options.get("item_limit", 100), item.warnings)
            out.append(item)
    return out
