"""The kinds' JSON Schemas (reconciler/schemas), compiled once with their references inlined, and a schema's
complaint said in a person's words at the field it is about. jsonschema is imported only when a document must be
checked by it: the fast check (fastschemas.py) passes the valid ones."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

from reconciler.spec.fastschemas import inlined_schema, schema_files, schema_registry
from reconciler.spec.problems import Path_


@functools.cache
def schema_validators() -> dict[str, Draft202012Validator]:
    """One Draft 2020-12 validator per kind, its `$ref`s to the common schemas and its own `$defs` inlined:
    resolving them at each document costs more than validating it (a thousand specs load in half the time)."""
    from jsonschema import Draft202012Validator

    return {kind: Draft202012Validator(inlined_schema(kind), registry=schema_registry())
            for kind in schema_files()}


ENVIRONMENT_KIND = "Environment"  # not a resource: the document that builds a spec set (environments.py)


def known_kinds() -> list[str]:
    return sorted(k for k in schema_files() if k != ENVIRONMENT_KIND)


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
        from jsonschema.exceptions import best_match

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
