"""DynamoDB's shapes: a spec's fields as the API takes them (key schema, attribute definitions, throughput,
indexes, TTL) and DescribeTable's answer as a spec's fields."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


def by_name(entry: dict[str, Any]) -> str:
    return str(entry["name"])


def key_names(spec: dict[str, Any]) -> list[str]:
    names = [spec["partitionKey"]["name"]]
    if spec.get("sortKey"):
        names.append(spec["sortKey"]["name"])
    return names


def capacity_shape(raw: dict[str, Any] | None) -> dict[str, int] | None:
    return {"read": int(raw["read"]), "write": int(raw["write"])} if raw else None


def gsi_shape(gsi: dict[str, Any], capacity: dict[str, Any] | None, mode: str) -> dict[str, Any]:
    shape: dict[str, Any] = {"name": gsi["name"], "partitionKey": gsi["partitionKey"]}
    if gsi.get("sortKey"):
        shape["sortKey"] = gsi["sortKey"]
    shape["projection"] = gsi.get("projection", "ALL")
    if shape["projection"] == "INCLUDE":
        shape["nonKeyAttributes"] = sorted(gsi.get("nonKeyAttributes") or [])
    if mode == "PROVISIONED":
        shape["capacity"] = capacity_shape(capacity)
    return shape


def ttl_shape(raw: dict[str, Any]) -> dict[str, Any]:
    return {"attribute": raw["attribute"], "enabled": bool(raw.get("enabled", True))}


def ttl_live(desc: dict[str, Any]) -> dict[str, Any] | None:
    status = desc.get("TimeToLiveStatus", "DISABLED")
    if status in ("DISABLED",) and not desc.get("AttributeName"):
        return {"attribute": None, "enabled": False}
    return {"attribute": desc.get("AttributeName"), "enabled": status in ("ENABLED", "ENABLING")}


def table_state(table: dict[str, Any]) -> dict[str, Any]:
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
        state["capacity"] = live_capacity(table.get("ProvisionedThroughput"))
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
            shape["capacity"] = live_capacity(g.get("ProvisionedThroughput"))
        gsis.append(shape)
    state["globalSecondaryIndexes"] = gsis
    return state


def live_capacity(raw: dict[str, Any] | None) -> dict[str, int] | None:
    if not raw:
        return None
    return {"read": int(raw.get("ReadCapacityUnits", 0)), "write": int(raw.get("WriteCapacityUnits", 0))}


def key_schema(pk: dict[str, str], sk: dict[str, str] | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": pk["name"], "KeyType": "HASH"}]
    if sk:
        schema.append({"AttributeName": sk["name"], "KeyType": "RANGE"})
    return schema


def attribute_definitions(spec: dict[str, Any]) -> list[dict[str, str]]:
    """Every key attribute of the table and its indexes, once each."""
    attrs: dict[str, str] = {}
    for holder in [spec, *(spec.get("globalSecondaryIndexes") or [])]:
        for role in ("partitionKey", "sortKey"):
            if holder.get(role):
                attrs.setdefault(holder[role]["name"], holder[role]["type"])
    return [{"AttributeName": n, "AttributeType": t} for n, t in attrs.items()]


def throughput(capacity: dict[str, int]) -> dict[str, int]:
    return {"ReadCapacityUnits": capacity["read"], "WriteCapacityUnits": capacity["write"]}


def gsi_create(gsi: dict[str, Any]) -> dict[str, Any]:
    projection: dict[str, Any] = {"ProjectionType": gsi["projection"]}
    if gsi["projection"] == "INCLUDE":
        projection["NonKeyAttributes"] = gsi["nonKeyAttributes"]
    out: dict[str, Any] = {
        "IndexName": gsi["name"],
        "KeySchema": key_schema(gsi["partitionKey"], gsi.get("sortKey")),
        "Projection": projection,
    }
    if gsi.get("capacity"):
        out["ProvisionedThroughput"] = throughput(gsi["capacity"])
    return out


def without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


def field_of(path: str) -> str:
    """`spec.tags.team` -> `tags`; `spec.items[UserId=1]` -> `items`."""
    return path.split(".", 2)[1].split("[", 1)[0]
