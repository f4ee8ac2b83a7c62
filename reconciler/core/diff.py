"""Field-level diff, driven by each kind's table of field facts.

A kind declares its fields once (`Field`): where they sit in the spec, their default,
whether AWS treats a list as unordered, how list entries are matched, and whether a
change forces replacement. This module compares desired and live state with those facts
and returns FieldChanges; no resource module writes its own comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from reconciler.core.types import OWNERSHIP_TAGS, FieldChange

MISSING: Any = object()
Mode = Literal["value", "set", "map", "keyed"]


@dataclass(frozen=True)
class Field:
    """The facts about one managed field of a kind.

    name:     key under `spec` ("billingMode"); the plan path is `spec.<name>`.
    default:  value assumed when the spec leaves it out; MISSING = not managed then.
    mode:     value (compare whole), set (unordered list), map (per key: tags),
              keyed (list of entries matched by `key`, e.g. GSIs by name).
    key:      for keyed lists, how an entry is identified.
    per_attribute: keyed entries present on both sides are compared attribute by attribute
              (`spec.items[UserId=u-1].Name`), not as whole entries.
    prune:    map/keyed: live entries the spec does not list are changes (removed),
              but only when the spec states the field.
    replace:  a change of this field forces replacement.
    api:      the AWS API field it maps to (documentation, IAM policy generation).
    """

    name: str
    default: Any = MISSING
    mode: Mode = "value"
    key: Callable[[Any], str] | None = None
    prune: bool = True
    replace: bool = False
    sensitive: bool = False
    api: str = ""
    per_attribute: bool = False  # keyed: an entry on both sides differs attribute by attribute (items)

    @property
    def path(self) -> str:
        return f"spec.{self.name}"


def normalise(value: Any) -> Any:
    """Plain, comparable form: ints and integral Decimals unify, floats become Decimal."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else value.normalize()
    if isinstance(value, Mapping):
        return {str(k): normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((normalise(v) for v in value), key=repr)
    return value


def _sorted_set(value: Iterable[Any] | None) -> list[Any]:
    return sorted((normalise(v) for v in value or ()), key=repr)


def diff_fields(
    fields: Iterable[Field],
    desired: Mapping[str, Any],
    live: Mapping[str, Any],
    stated: Iterable[str] = (),
) -> list[FieldChange]:
    """Compare desired and live spec-shaped state field by field.

    `stated` names the fields the user wrote in the spec (pruning applies only to them).
    A field with no desired value and no default is unmanaged and not compared.
    """
    stated = set(stated)
    changes: list[FieldChange] = []
    for f in fields:
        want = desired.get(f.name, f.default)
        if want is MISSING:
            continue
        have = live.get(f.name)
        if f.mode == "map":
            if f.name == "tags":  # AWS reserves aws:* tags (CloudFormation's, ...): never diffed, removed, written;
                # the agent's own bookkeeping tags (reconciler:* but the ownership ones) are not the spec's either
                want, have = _without_reserved(want or {}), _without_reserved(have or {})
            changes += _diff_map(f, want or {}, have or {}, f.prune and f.name in stated)
        elif f.mode == "keyed":
            changes += _diff_keyed(f, want or [], have or [], f.prune and f.name in stated)
        elif f.mode == "set":
            if _sorted_set(want) != _sorted_set(have):
                changes.append(_change(f, f.path, _sorted_set(have), _sorted_set(want)))
        elif normalise(want) != normalise(have):
            changes.append(_change(f, f.path, normalise(have), normalise(want)))
    return changes


RESERVED_TAG_PREFIX = "aws:"
BOOKKEEPING_TAG_PREFIX = "reconciler:"


def _without_reserved(tags: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in tags.items() if not str(k).startswith(RESERVED_TAG_PREFIX)
            and (not str(k).startswith(BOOKKEEPING_TAG_PREFIX) or k in OWNERSHIP_TAGS)}


def _change(f: Field, path: str, before: Any, after: Any, entry: str | None = None) -> FieldChange:
    return FieldChange(path, before, after, forces_replacement=f.replace, sensitive=f.sensitive, entry=entry)


def _diff_map(f: Field, want: Mapping[str, Any], have: Mapping[str, Any], prune: bool) -> list[FieldChange]:
    keys = sorted(set(want) | (set(have) if prune else set()))
    return [
        _change(f, f"{f.path}.{k}", normalise(have.get(k)), normalise(want.get(k)))
        for k in keys
        if normalise(want.get(k)) != normalise(have.get(k))
    ]


def _diff_keyed(f: Field, want: list[Any], have: list[Any], prune: bool) -> list[FieldChange]:
    assert f.key is not None, f"keyed field {f.name} needs a key"
    wanted = {f.key(w): normalise(w) for w in want}
    found = {f.key(h): normalise(h) for h in have}
    keys = list(wanted) + sorted(k for k in found if k not in wanted and prune)
    changes = []
    for k in keys:
        after, before = wanted.get(k), found.get(k)
        if after == before:
            continue
        if f.per_attribute and isinstance(after, dict) and isinstance(before, dict):
            names = list(after) + sorted(a for a in before if a not in after)
            changes += [_change(f, f"{f.path}[{k}].{a}", before.get(a), after.get(a), entry=k)
                        for a in names  # an absent attribute is not one whose value is null
                        if (a in after) != (a in before) or after.get(a) != before.get(a)]
        else:
            changes.append(_change(f, f"{f.path}[{k}]", before, after, entry=k))
    return changes


def is_ignored(path: str, ignore: Iterable[str]) -> bool:
    """True if `path` is one of the ignored paths or lies below one."""
    return any(path == p or path.startswith((p + ".", p + "[")) for p in ignore)


def mark_ignored(changes: list[FieldChange], ignore: Iterable[str]) -> list[FieldChange]:
    ignore = tuple(ignore)
    for c in changes:
        c.ignored = is_ignored(c.path, ignore)
    return changes
