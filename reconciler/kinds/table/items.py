"""A table's declared items: DynamoDB's AttributeValues to and from plain values, read in batches of 100
(BatchGetItem), written in batches of 25 (BatchWriteItem), checked against the key's types, exported."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from reconciler.aws import constraints

if TYPE_CHECKING:
    from reconciler.spec.documents import Spec
    from reconciler.spec.problems import Path_


from reconciler.kinds.table.shapes import key_names


@functools.cache
def codec() -> tuple[Any, Any]:
    """boto3's AttributeValue serializer and deserializer (imported on first use: validate needs
    neither boto3 nor its import time)."""
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    return TypeSerializer(), TypeDeserializer()


BATCH_GET = 100


BATCH_WRITE = 25


def batch_get(ddb: Any, keys: list[tuple[str, dict[str, Any]]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(table, item) for every (table, key) found: BatchGetItem, up to 100 keys a request across tables,
    consistent reads, unprocessed keys asked again."""
    for start in range(0, len(keys), BATCH_GET):
        request: dict[str, Any] = {}
        for table, key in keys[start:start + BATCH_GET]:
            request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(key)
        while request:
            out = ddb.batch_get_item(RequestItems=request)
            for table, items in out.get("Responses", {}).items():
                for raw in items:
                    yield table, raw
            request = out.get("UnprocessedKeys") or {}
            if request:
                time.sleep(0.05)


def read_declared_items(ddb: Any, specs: Sequence[Spec]) -> dict[str, list[dict[str, Any]]] | None:
    """The declared items of every table of the spec set, in shared BatchGetItem requests (one for a
    small stack, instead of one per table). None when that fails (a table missing, being created, or
    keyed differently from its spec: AWS then refuses the whole request): each table reads its own."""
    tables = [s for s in specs if s.kind == "Table" and s.spec.get("items") and s.metadata.state != "absent"]
    found: dict[str, list[dict[str, Any]]] = {t.name: [] for t in tables}
    try:
        for table, raw in batch_get(ddb, [(t.name, key) for t in tables for key in declared_keys(t.spec)]):
            found[table].append(from_dynamo(raw))
    except ddb.exceptions.ClientError:
        return None
    return found


def declared_keys(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The declared items' keys as AttributeValues, for BatchGetItem."""
    return [{k: codec()[0].serialize(item[k]) for k in key_names(spec)} for item in spec["items"]]


def to_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    return {k: codec()[0].serialize(v) for k, v in item.items()}


def from_dynamo(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: plain(codec()[1].deserialize(v)) for k, v in raw.items()}


def plain(value: Any) -> Any:
    """boto3's deserialized value as a plain one: Binary -> bytes, inside maps, lists and sets too."""
    from boto3.dynamodb.types import Binary

    if isinstance(value, Binary):
        return bytes(value.value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return {plain(v) for v in value}
    return value


TYPE_OF = {"S": str, "N": (int, Decimal), "B": bytes}


def check_items(spec: dict[str, Any], types: dict[str, str], keys: list[str]) -> list[tuple[Path_, str]]:
    problems: list[tuple[Path_, str]] = []
    seen: dict[tuple[Any, ...], int] = {}
    for i, item in enumerate(spec.get("items") or []):
        path: Path_ = ("spec", "items", i)
        for key in keys:
            value = item.get(key)
            expected = TYPE_OF[types[key]]
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
            to_dynamo(item)
        except ArithmeticError:  # boto3's DynamoDB decimal context: Overflow, Underflow, Inexact...
            problems.append((path, "a number cannot be stored in DynamoDB: at most 38 significant digits, "
                                   "magnitude between 1E-130 and 9.99E+125"))
        except (TypeError, ValueError) as exc:
            problems.append((path, f"cannot be stored in DynamoDB: {exc}"))
    return problems


def export_items(ddb: Any, name: str, limit: int, warnings: list[str]) -> list[dict[str, Any]]:
    """Up to `limit` items, as plain values; a larger table is said, not silently cut."""
    items: list[dict[str, Any]] = []
    args: dict[str, Any] = {"TableName": name, "Limit": min(limit + 1, 1000)}
    while len(items) <= limit:
        page = ddb.scan(**args)
        items += [from_dynamo(raw) for raw in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            break
        args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    if len(items) > limit:
        warnings.append(f"spec.items: the table has more than {limit} items; only {limit} were exported "
                        "(items in a spec are reference data, not a backup; raise --item-limit if you mean it)")
    return items[:limit]
