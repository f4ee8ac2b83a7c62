"""What validate checks of a Table spec beyond its schema (names, billing, keys and indexes, items), and the
CreateTable request its creation sends, checked against AWS's rules before any call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from reconciler.aws import constraints
from reconciler.core.types import Request
from reconciler.kinds.table.items import check_items
from reconciler.kinds.table.shapes import (
    attribute_definitions,
    gsi_create,
    key_names,
    key_schema,
    throughput,
)

if TYPE_CHECKING:
    from reconciler.kinds.table.protocol import TableLike
    from reconciler.spec.documents import Spec
    from reconciler.spec.problems import Path_


def check_table(spec: Spec, specs: Sequence[Spec]) -> list[tuple[Path_, str]]:
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
    problems += check_items(s, types, [n for n in types if n in key_names(s)])
    return problems


def create_requests(table: TableLike) -> list[Request]:
    """CreateTable as create() sends it (its tags: the spec's and the agent's; the TTL record comes later)."""
    args = create_args(table, )
    tags = {t["Key"]: t["Value"] for t in args["Tags"]}
    return [Request("dynamodb", "CreateTable", args, tags=tags, kept=1 if "ttl" in table.spec.spec else 0)]


def create_args(table: TableLike) -> dict[str, Any]:
    spec, want = table.spec.spec, table.desired()
    args: dict[str, Any] = {
        "TableName": table.name,
        "KeySchema": key_schema(spec["partitionKey"], spec.get("sortKey")),
        "AttributeDefinitions": attribute_definitions(spec),
        "BillingMode": want["billingMode"],
        "Tags": [{"Key": k, "Value": v} for k, v in want["tags"].items()],
    }
    if want["billingMode"] == "PROVISIONED":
        args["ProvisionedThroughput"] = throughput(want["capacity"])
    if want.get("globalSecondaryIndexes"):
        args["GlobalSecondaryIndexes"] = [gsi_create(g) for g in want["globalSecondaryIndexes"]]
    if "deletionProtection" in spec:
        args["DeletionProtectionEnabled"] = bool(spec["deletionProtection"])
    return args
