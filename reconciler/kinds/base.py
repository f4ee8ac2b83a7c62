"""The interface every kind implements: its verbs (observe, diff, steps, create/update/delete, refusal) and the
defaults most kinds share. What only some kinds do (validation beyond the schema, IAM scoping, matching AWS's
change events, export) is in interfaces.py, beside it."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from reconciler.core.diff import MISSING, Field, diff_fields
from reconciler.core.types import FieldChange, Live, Step, ownership_tags
from reconciler.kinds.tags import field_names

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.spec.documents import Spec


class Resource:
    """One spec's resource. Subclasses implement observe/create/update/delete for one kind.

    Everything else (ownership, policies, ordering, rendering, applying) is the engine's. `dependencies` and
    `peer` tie a resource to the others of its spec set (a distribution and its bucket).
    """

    kind: ClassVar[str]
    tagging_type: ClassVar[str] = ""       # service:type in the Resource Groups Tagging API (inventory)
    service: ClassVar[str]                 # boto3 service name, for errors and IAM
    fields: ClassVar[tuple[Field, ...]]
    order: ClassVar[int] = 50              # apply order: lower first; deletes run in reverse
    data_bearing: ClassVar[bool] = False   # deleting/replacing it loses data
    takes: ClassVar[dict[str, str]] = {}  # action -> the work AWS does after it (TYPICAL_DURATIONS), for base steps

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
