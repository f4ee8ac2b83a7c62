"""What only some kinds do, each a small interface beside the verbs (base.py), as crossplane-runtime keeps its
optional ones: a kind implements those it needs, and the engine asks `isinstance` before it calls one.

- `Validated`: rules a JSON Schema cannot say, and the requests creation sends (checked against AWS's rules
  before any call) — engine/load.py.
- `IamScoped`: the IAM actions the kind's code calls, and how its writes are scoped — engine/iam.py.
- `EventMatched`: which of AWS's change events (CloudTrail) name one of its resources — agent/watch.py.
- `Exportable`: every live resource of the kind as a spec a person would write — engine/export.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from reconciler.core.types import Live, Request

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.kinds.exported import Exported
    from reconciler.spec.documents import Spec
    from reconciler.spec.problems import Path_


class Validated:
    """A kind with rules of its own beyond the schema."""

    @classmethod
    def check_spec(cls, spec: Spec, specs: Sequence[Spec]) -> list[tuple[Path_, str]]:
        """Rules a JSON Schema cannot express, as (field path, message) pairs."""
        return []

    def requests(self) -> list[Request]:
        """The calls creating this spec's resource sends, built from the spec alone (`validate` checks each against
        AWS's rules before any call)."""
        return []


class IamScoped:
    """A kind's IAM actions, listed next to its code. Of those, `iam_tagged`: the writes allowed only on resources
    tagged managed-by=reconciler (their names are not known ahead); `iam_request_tagged`: the creates allowed only
    with that tag in the request; `iam_unscoped`: the few that cannot be scoped at all (untaggable, random ids).
    Every other write is scoped by `iam_resources`."""

    iam_actions: ClassVar[tuple[str, ...]] = ()
    iam_tagged: ClassVar[tuple[str, ...]] = ()
    iam_request_tagged: ClassVar[tuple[str, ...]] = ()
    iam_unscoped: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def iam_resources(cls, spec: Spec | None) -> dict[str, list[str]]:
        """The ARNs (by IAM service prefix) this spec's writes act on; None = any name of this kind."""
        return {}


class EventMatched:
    """A kind whose resources AWS's change events name (`run --watch-events`)."""

    # CloudTrail `eventSource` -> the `requestParameters` keys whose value names a resource of this kind
    event_keys: ClassVar[dict[str, tuple[str, ...]]] = {}
    name: str

    def event_ids(self, live: Live | None) -> set[str]:
        """What AWS's change events call this resource (name, id, ARN): matched against event_keys."""
        ids = {self.name}
        if live is not None:
            ids |= {live.id, *(str(live.extra[k]) for k in ("arn",) if live.extra.get(k))}
        return ids


class Exportable:
    """A kind `reconciler export` writes specs for."""

    @classmethod
    def export(cls, aws: Aws, options: dict[str, Any]) -> list[Exported]:
        """Every live resource of this kind as a spec a person would write (read-only)."""
        return []


class OfSpec(Protocol):
    """What a kind's helper modules may ask of the resource they are given (each kind's protocol.py adds its
    own): typed by it, they import nothing of the kind's module, which imports them."""

    spec: Spec

    @property
    def name(self) -> str: ...
