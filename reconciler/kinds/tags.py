"""Tags and field names, as every kind reads and writes them: the cycle's bulk tag listing or a direct read,
and a change's `spec.tags.*` fields as the tags to put and the keys to remove."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from reconciler.core.types import FieldChange

if TYPE_CHECKING:
    from reconciler.aws.client import Aws


def observed_tags(aws: Aws, ref: str, arn: str, read: Callable[[], dict[str, str]],
                  agrees: Callable[[dict[str, str]], bool] = lambda tags: True) -> dict[str, str]:
    """A resource's tags: from the cycle's bulk listing when it has them, else `read()` directly.

    `agrees` is the kind's check of its own bookkeeping tags (a token rotation's stage, invalidations issued):
    the steps of a multi-step change go by them, so a listing that does not show them as the spec would is
    confirmed by a direct read before it counts. A listing that lags a person's change by a moment only reports
    that drift a cycle later; the agent's own writes are read directly for a while (Aws.listed_tags).
    """
    listed = aws.listed_tags(ref, arn)
    if listed is not None and agrees(listed):
        return listed
    return read()


def field_names(changes: Sequence[FieldChange]) -> list[str]:
    """The top-level spec fields that `changes` touch, in order: `spec.tags.team` -> `tags`."""
    names: list[str] = []
    for c in changes:
        name = c.path.split(".", 2)[1].split("[", 1)[0] if c.path.startswith("spec.") else c.path
        if name not in names:
            names.append(name)
    return names


def tag_changes(changes: Sequence[FieldChange]) -> tuple[dict[str, str], list[str]]:
    """The `spec.tags.*` changes as tags to put and tag keys to remove."""
    tags = [c for c in changes if c.path.startswith("spec.tags.")]
    put = {c.path.split(".", 2)[2]: c.after for c in tags if c.after is not None}
    drop = [c.path.split(".", 2)[2] for c in tags if c.after is None]
    return put, drop


