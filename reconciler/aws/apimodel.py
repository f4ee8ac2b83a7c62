"""The constraints botocore's service models state for each request member (lengths, patterns, enums, ranges,
required members), checked the way AWS's own request validation reports them: `validate` checks the requests a
spec's creation sends before any call; the sandbox refuses a request that breaks one, as AWS does. botocore itself
checks only types, required members and minimums on the client; AWS checks the rest.

Messages follow AWS's validation answers: "Value 'x' at 'tableName' failed to satisfy constraint: Member must
satisfy regular expression pattern: [a-zA-Z0-9_.-]+".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from reconciler.aws.trimmed import kept_models, session_loader
from reconciler.core.statedir import state_dir


@functools.cache
def service_model(service: str, trimmed: bool = False) -> Any:
    """botocore's model of a service (loaded once per process; no client, no credentials). `trimmed`: the one cut
    to the agent's operations (aws/trimmed.py), when it has been written: the same shapes, a tenth of the load."""
    import botocore.loaders
    import botocore.model

    kept = kept_models(state_dir() / "models") if trimmed else None
    if trimmed and kept is None:
        return None
    loader = (session_loader(kept) if kept else None) or botocore.loaders.Loader(
        extra_search_paths=[str(kept)] if kept else [], include_default_search_paths=not kept)
    return botocore.model.ServiceModel(loader.load_service_model(service, "service-2"), service_name=service)


def operation_model(service: str, operation: str) -> Any:
    """The operation's model: from the trimmed models when they hold it, else from botocore's own."""
    for trimmed in (True, False):
        try:
            model = service_model(service, trimmed)
        except Exception:  # no trimmed model of this service: botocore's own then
            continue
        if model is not None and operation in model.operation_names:
            return model.operation_model(operation)
    return service_model(service).operation_model(operation)


@functools.cache
def _pattern(expression: str) -> Any:
    """AWS's patterns are Java's: \\p{L} and friends need `regex`; the others read the same in `re`, which a
    process has imported already (`regex` is 1.5 MiB more of the daemon's memory)."""
    if "\\p" not in expression and "\\P" not in expression:
        try:
            return re.compile(expression)
        except re.error:
            pass
    import regex

    return regex.compile(expression)


def violations(service: str, operation: str, params: Mapping[str, Any], unchecked: Collection[str] = ()) -> list[str]:
    """Every constraint of botocore's model that `params` breaks, in AWS's words (an empty list: none). Members
    named in `unchecked` (AWS's lowerCamelCase names, at any depth) are left to the caller's own rules."""
    shape = operation_model(service, operation).input_shape
    return list(_check(shape, params, "", frozenset(unchecked))) if shape is not None else []


def _name(path: str, member: str) -> str:
    """How AWS names a member in its validation messages: lowerCamelCase, dotted."""
    name = member[:1].lower() + member[1:]
    return f"{path}.{name}" if path else name


def _check(shape: Any, value: Any, path: str, unchecked: frozenset[str]) -> Iterator[str]:
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        if not isinstance(value, Mapping):
            return
        for required in shape.required_members:
            if value.get(required) is None:
                yield f"Value null at '{_name(path, required)}' failed to satisfy constraint: Member must not be null"
        for member, member_shape in shape.members.items():
            if value.get(member) is not None and _name("", member) not in unchecked:
                yield from _check(member_shape, value[member], _name(path, member), unchecked)
    elif kind == "list":
        if not isinstance(value, list | tuple):
            return
        yield from _length(value, len(value), meta, path)
        for i, item in enumerate(value, start=1):
            yield from _check(shape.member, item, f"{path}.{i}.member", unchecked)
    elif kind == "map":
        if not isinstance(value, Mapping):
            return
        yield from _length(value, len(value), meta, path)
        for key, item in value.items():
            yield from _check(shape.key, key, f"{path}.key", unchecked)
            yield from _check(shape.value, item, f"{path}.{key}.member", unchecked)
    elif kind == "string" and isinstance(value, str):
        yield from _length(value, len(value), meta, path)
        if shape.enum and value not in shape.enum:
            yield (f"Value {value!r} at '{path}' failed to satisfy constraint: Member must satisfy enum value set: "
                   f"[{', '.join(shape.enum)}]")
        pattern = meta.get("pattern")
        if pattern and not _pattern(pattern).fullmatch(value):
            yield (f"Value {_shown(value)} at '{path}' failed to satisfy constraint: Member must satisfy regular "
                   f"expression pattern: {pattern}")
    elif kind in ("integer", "long", "float", "double") and isinstance(value, int | float) \
            and not isinstance(value, bool):
        yield from _bounds(value, value, meta, path, "value")


def _length(value: Any, length: int, meta: Mapping[str, Any], path: str) -> Iterator[str]:
    yield from _bounds(_shown(value), length, meta, path, "length")


def _bounds(shown: Any, measure: float, meta: Mapping[str, Any], path: str, what: str) -> Iterator[str]:
    """The model's `min` and `max` for a member's value or length, as AWS words a breach of them."""
    for bound, word, broken in (("min", "greater", measure < meta.get("min", measure)),
                                ("max", "less", measure > meta.get("max", measure))):
        if broken:
            yield (f"Value {shown} at '{path}' failed to satisfy constraint: Member must have {what} {word} than or "
                   f"equal to {meta[bound]}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "...'"


def message(found: list[str]) -> str:
    """AWS's summary of validation failures: `1 validation error detected: ...`."""
    n = len(found)
    return f"{n} validation error{'s' if n != 1 else ''} detected: " + "; ".join(found)


# ---------------------------------------------------------------------------- requests on the wire (the sandbox)


def from_query(service: str, operation: str, form: Mapping[str, str]) -> dict[str, Any]:
    """The parameters of a query-protocol request (ElastiCache, EC2, STS...), rebuilt from its form by the model
    (`Tags.Tag.1.Key` -> {"Tags": [{"Key": ...}]})."""
    model = service_model(service)
    shape = model.operation_model(operation).input_shape
    ec2 = model.protocol == "ec2"
    if shape is None:
        return {}
    return _unflatten(shape, dict(form), "", ec2) or {}


def _serialized(member_shape: Any, name: str, ec2: bool) -> str:
    if ec2:  # EC2's query names: queryName, else the locationName (or member name) capitalised
        if member_shape.serialization.get("queryName"):
            return str(member_shape.serialization["queryName"])
        located = member_shape.serialization.get("name") or name
        return located[:1].upper() + located[1:]
    return member_shape.serialization.get("name") or name


def _unflatten(shape: Any, form: dict[str, str], prefix: str, ec2: bool) -> Any:
    kind = shape.type_name
    if kind == "structure":
        out = {}
        for name, member in shape.members.items():
            serialized = _serialized(member, name, ec2)
            value = _unflatten(member, form, f"{prefix}.{serialized}" if prefix else serialized, ec2)
            if value is not None:
                out[name] = value
        return out if out or not prefix else None
    if kind == "list":
        items = []
        member_name = "" if ec2 or shape.serialization.get("flattened") else \
            (shape.member.serialization.get("name") or "member") + "."
        for i in range(1, 10_000):
            value = _unflatten(shape.member, form, f"{prefix}.{member_name}{i}", ec2)
            if value is None:
                break
            items.append(value)
        return items or None
    if kind == "map":
        out = {}
        for i in range(1, 10_000):
            key = form.get(f"{prefix}.entry.{i}.key")
            if key is None:
                break
            out[key] = _unflatten(shape.value, form, f"{prefix}.entry.{i}.value", ec2)
        return out or None
    raw = form.get(prefix)
    if raw is None:
        return None
    if kind in ("integer", "long"):
        try:
            return int(raw)
        except ValueError:
            return raw
    if kind in ("float", "double"):
        try:
            return float(raw)
        except ValueError:
            return raw
    if kind == "boolean":
        return raw.lower() == "true"
    return raw
