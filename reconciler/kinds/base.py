"""The interface every kind implements, and the defaults most kinds share."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from reconciler.core.diff import MISSING, Field, diff_fields
from reconciler.core.types import FieldChange, Live, Request, Step, ownership_tags

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.kinds.exported import Exported
    from reconciler.spec.documents import Path_, Spec


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


class Resource:
    """One spec's resource. Subclasses implement observe/create/update/delete for one kind.

    Everything else (ownership, policies, ordering, rendering, applying) is the engine's.
    """

    kind: ClassVar[str]
    tagging_type: ClassVar[str] = ""       # service:type in the Resource Groups Tagging API (inventory)
    service: ClassVar[str]                 # boto3 service name, for errors and IAM
    fields: ClassVar[tuple[Field, ...]]
    order: ClassVar[int] = 50              # apply order: lower first; deletes run in reverse
    data_bearing: ClassVar[bool] = False   # deleting/replacing it loses data
    takes: ClassVar[dict[str, str]] = {}  # action -> the work AWS does after it (typical.DURATIONS), for base steps
    iam_actions: ClassVar[tuple[str, ...]] = ()
    # Of those, the writes allowed only on resources tagged managed-by=reconciler (their names are not
    # known ahead), the creates allowed only with that tag in the request, and the few that cannot be
    # scoped at all (untaggable, random ids). Every other write is scoped by iam_resources().
    iam_tagged: ClassVar[tuple[str, ...]] = ()
    iam_request_tagged: ClassVar[tuple[str, ...]] = ()
    iam_unscoped: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: Spec, specs: Sequence[Spec] = ()):
        self.spec = spec
        self.specs = specs  # the spec set this one belongs to (for references to other specs)
        self.peers: dict[str, Live | None] = {}  # other resources as this plan observed them (the engine's)

    def peer(self, ref: str) -> Live | None:
        """Another spec's resource (`Kind/name`) as the engine observed it for this plan; None when it does not
        exist or was not observed. How one kind refers to another's live state (a bucket's distribution)
        without reading it itself."""
        return self.peers.get(ref)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def ref(self) -> str:
        return self.spec.ref

    # ------------------------------------------------------------------ validation

    @classmethod
    def iam_resources(cls, spec: Spec | None) -> dict[str, list[str]]:
        """The ARNs (by IAM service prefix) this spec's writes act on; None = any name of this kind."""
        return {}

    @classmethod
    def check_spec(cls, spec: Spec, specs: Sequence[Spec]) -> list[tuple[Path_, str]]:
        """Rules a JSON Schema cannot express, as (field path, message) pairs."""
        return []

    def requests(self) -> list[Request]:
        """The calls creating this spec's resource sends, built from the spec alone (`validate` checks each against
        AWS's rules before any call); none by default."""
        return []

    def dependencies(self) -> list[str]:
        """Refs (`Kind/name`) of specs this one needs to exist first."""
        return []

    # ------------------------------------------------------------------ desired state

    def desired(self) -> dict[str, Any]:
        """The spec in the normalised shape observe() produces, ownership tags included."""
        state = dict(self.spec.spec)
        for f in self.fields:
            if f.default is not MISSING and state.get(f.name) is None:
                state[f.name] = copy.deepcopy(f.default)
        state["tags"] = {**(state.get("tags") or {}), **ownership_tags(self.name, self.spec.environment)}
        return state

    def field_table(self) -> tuple[Field, ...]:
        """The kind's field facts, bound to this spec where a fact depends on it."""
        return self.fields

    # CloudTrail `eventSource` -> the `requestParameters` keys whose value names a resource of this kind
    # (AWS's change events, `run --watch-events`)
    event_keys: ClassVar[dict[str, tuple[str, ...]]] = {}

    def event_ids(self, live: Live | None) -> set[str]:
        """What AWS's change events call this resource (name, id, ARN): matched against event_keys."""
        ids = {self.name}
        if live is not None:
            ids |= {live.id, *(str(live.extra[k]) for k in ("arn",) if live.extra.get(k))}
        return ids

    def observed_tags(self, aws: Aws, arn: str, read: Callable[[], dict[str, str]],
                      agrees: Callable[[dict[str, str]], bool] = lambda tags: True) -> dict[str, str]:
        """The resource's tags: from the cycle's bulk listing when it has them, else `read()` directly.

        `agrees` is the kind's check of its own bookkeeping tags (a token rotation's stage, invalidations
        issued): the steps of a multi-step change go by them, so a listing that does not show them as the
        spec would is confirmed by a direct read before it counts. A listing that lags a person's change
        by a moment only reports that drift a cycle later; the agent's own writes are read directly for a
        while (Aws.listed_tags).
        """
        listed = aws.listed_tags(self.ref, arn)
        if listed is not None and agrees(listed):
            return listed
        return read()

    def diff(self, live: Live | None) -> list[FieldChange]:
        """Field changes from live to desired (before = live, after = spec); None = absent."""
        state = live.state if live else {}
        return diff_fields(self.field_table(), self.desired(), state, stated=self.spec.spec.keys())

    def requires_replacement(self, changes: Sequence[FieldChange]) -> bool:
        return any(c.forces_replacement and not c.ignored for c in changes)

    # ------------------------------------------------------------------ AWS

    def prepare(self, aws: Aws) -> None:
        """Resolve what the desired state needs from AWS or elsewhere (default VPC, names to
        ids, secret values) before diff. Runs before observe, on the same worker; a failure
        is an observe failure, never "absent"."""

    def observe(self, aws: Aws) -> Live | None:
        """Read the managed fields; None means the resource does not exist.

        Any failure raises: an error is never read as "absent".
        """
        raise NotImplementedError

    def create(self, aws: Aws) -> None:
        raise NotImplementedError

    def update(self, aws: Aws, live: Live, changes: Sequence[FieldChange]) -> None:
        """Apply in-place changes (also used to adopt: changes then include ownership tags)."""
        raise NotImplementedError

    def delete(self, aws: Aws, live: Live) -> None:
        raise NotImplementedError

    def steps(self, aws: Aws, action: str, live: Live | None, changes: Sequence[FieldChange]) -> list[Step]:
        """The work `action` takes, in the order AWS accepts it, each step saying whether it must wait.

        The default suits a kind whose changes AWS takes at once: one step for the whole action,
        which waits while AWS reports the resource busy (`live.pending`). Kinds whose changes AWS
        accepts only one at a time (an index, a billing switch, a token rotation) return one step
        per call; the engine runs them, and later cycles pick up where AWS made it wait.
        """
        busy = live.pending if live else None
        takes = self.takes.get(action)
        if action == "create":
            return [Step(f"create {self.kind} {self.name}", lambda: self.create(aws), settles=True, takes=takes)]
        if action == "delete":
            assert live is not None
            return [Step(f"delete {self.kind} {self.name}", lambda: self.delete(aws, live), settles=True, wait=busy,
                         takes=takes)]
        assert live is not None
        return [Step(f"update {', '.join(field_names(changes))}", lambda: self.update(aws, live, changes),
                     wait=busy, takes=takes)]

    def backup(self, aws: Aws, live: Live) -> str | None:
        """Take a backup before a delete or replace (data-bearing kinds); returns its name."""
        return None

    def refusal(self, action: str, live: Live | None) -> str | None:
        """Why this kind cannot carry out `action` on what is live (a bucket that holds objects the
        agent did not put there); None when it can. The plan shows it as refused."""
        return None

    def plan_notes(self, action: str, live: Live | None) -> list[str]:
        """Extra lines the plan should show for this resource (e.g. pending work)."""
        return []

    @classmethod
    def export(cls, aws: Aws, options: dict[str, Any]) -> list[Exported]:
        """Every live resource of this kind as a spec a person would write (read-only)."""
        return []
