"""The kinds' JSON Schemas (reconciler/schemas), compiled once with their references inlined, and a schema's
complaint said in a person's words at the field it is about."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from reconciler.spec.problems import Path_


def schema_dir() -> Path:
    """Where the JSON Schemas live: packaged in a wheel, or schemas/ in a checkout."""
    packaged = Path(__file__).parent.parent / "_schemas"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent.parent / "schemas"


@functools.cache
def schema_validators() -> dict[str, Draft202012Validator]:
    """One Draft 2020-12 validator per kind, its `$ref`s to the common schemas and its own `$defs` inlined:
    resolving them at each document costs more than validating it (a thousand specs load in half the time)."""
    schemas = [json.loads(p.read_text()) for p in sorted(schema_dir().glob("*.schema.json"))]
    registry: Registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in schemas
    )
    return {
        s["properties"]["kind"]["const"]: Draft202012Validator(inline_refs(s, s, registry), registry=registry)
        for s in schemas
        if "kind" in s.get("properties", {})
    }


def inline_refs(node: Any, root: dict[str, Any], registry: Registry, depth: int = 0) -> Any:
    """`node` with every `$ref` replaced by what it points at (its siblings kept beside it in an allOf)."""
    if depth > 20:  # a recursive schema: left to the validator's own resolution
        return node
    if isinstance(node, list):
        return [inline_refs(v, root, registry, depth) for v in node]
    if not isinstance(node, dict):
        return node
    if isinstance(node.get("$ref"), str):
        target, target_root = resolve(node["$ref"], root, registry)
        inlined = inline_refs(target, target_root, registry, depth + 1)
        rest = {k: inline_refs(v, root, registry, depth) for k, v in node.items() if k != "$ref"}
        return {**rest, "allOf": [*rest.get("allOf", []), inlined]} if rest else inlined
    return {k: (v if k == "$defs" else inline_refs(v, root, registry, depth)) for k, v in node.items()}


def resolve(ref: str, root: dict[str, Any], registry: Registry) -> tuple[Any, dict[str, Any]]:
    """The subschema `ref` names (`urn:...#/$defs/x` or `#/$defs/x`), and the schema it lives in."""
    base, _, pointer = ref.partition("#")
    document = registry.contents(base) if base else root
    target: Any = document
    for part in [p for p in pointer.split("/") if p]:
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return target, document


ENVIRONMENT_KIND = "Environment"  # not a resource: the document that builds a spec set (environments.py)


def known_kinds() -> list[str]:
    return sorted(k for k in schema_validators() if k != ENVIRONMENT_KIND)


def environment_validator() -> Draft202012Validator:
    return schema_validators()[ENVIRONMENT_KIND]


def describe_type(expected: str | list[str]) -> str:
    names = {"string": "a string", "integer": "an integer", "number": "a number",
             "boolean": "true or false", "object": "a mapping", "array": "a list",
             "null": "null"}
    kinds = expected if isinstance(expected, list) else [expected]
    return " or ".join(names.get(k, k) for k in kinds)


def schema_problems(error: ValidationError) -> list[tuple[Path_, str]]:
    """Turn one jsonschema error into (path, message) pairs a person can act on."""
    path: Path_ = tuple(error.absolute_path)
    custom = error.schema.get("x-message") if isinstance(error.schema, dict) else None
    if custom:
        return [(path, custom)]
    v, inst = error.validator, error.instance
    if v in ("oneOf", "anyOf") and error.context:
        return schema_problems(best_match(error.context))
    if v == "additionalProperties" and isinstance(inst, dict):
        props = error.schema.get("properties", {})
        allowed = ", ".join(sorted(props))
        extra = [k for k in inst if k not in props]
        hint = f" (expected one of: {allowed})" if allowed else ""
        return [((*path, k), f"unknown field{hint}") for k in extra]
    if v == "required" and isinstance(inst, dict):
        return [(path, f"missing required field {r!r}") for r in error.validator_value
                if r not in inst]
    if v == "enum":
        return [(path, f"{inst!r} is not one of {', '.join(map(str, error.validator_value))}")]
    if v == "const":
        return [(path, f"{inst!r} must be {error.validator_value!r}")]
    if v == "type":
        return [(path, f"expected {describe_type(error.validator_value)}, got {inst!r}")]
    if v == "pattern":
        return [(path, f"{inst!r} does not match the pattern {error.validator_value}")]
    return [(path, error.message)]
