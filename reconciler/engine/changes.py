"""What a plan says: one Change per resource (its action, fields, steps and why it is held), and the Plan
that holds them, with its summary, AWS's expected time and the versioned JSON (reconciler.plan/v1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reconciler.aws.expected_durations import ExpectedDurations, step_seconds
from reconciler.core.types import FieldChange, Live, Step
from reconciler.core.vocabulary import Action
from reconciler.engine.inventory import Owned
from reconciler.kinds import Resource

ACTIONS = tuple(a for a in Action if a is not Action.ERROR)  # a plan's summary counts each, and errors
PLAN_FORMAT = "reconciler.plan/v1"


@dataclass
class Change:
    """What the agent will do (or would do) to one resource, and why not if it won't."""

    resource: Resource
    action: Action
    fields: list[FieldChange] = field(default_factory=list)
    live: Live | None = None
    error: str | None = None          # planning failed, or the resource may not be touched
    refused: str | None = None        # planned, but a safety rule forbids applying it
    notes: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)  # the work, in AWS's order (see Resource.steps)
    window: str | None = None         # a change window blocks it now (which, until when)
    operator_paused: bool = False     # paused by an operator on the agent's page (not in the spec)
    waiting: str | None = None        # a resource it depends on failed or will not be made: waits, sends nothing

    def __post_init__(self) -> None:
        self.action = Action(self.action)  # "update" and Action.UPDATE are one

    @property
    def kind(self) -> str:
        return self.resource.kind

    @property
    def name(self) -> str:
        return self.resource.name

    @property
    def ref(self) -> str:
        return self.resource.ref

    @property
    def policy(self) -> str:
        return self.resource.spec.metadata.policy

    @property
    def effective_fields(self) -> list[FieldChange]:
        """The field changes apply acts on (ignored ones are only shown)."""
        return [f for f in self.fields if not f.ignored]

    @property
    def is_change(self) -> bool:
        return self.action.is_change

    @property
    def paused(self) -> bool:
        return self.resource.spec.metadata.paused or self.operator_paused

    @property
    def applicable(self) -> bool:
        """Would `apply` act on this change? Not when refused, observed only, or paused."""
        return (self.is_change and not self.refused and self.policy == "enforce" and not self.paused
                and not self.window)

    def to_json(self, durations: ExpectedDurations | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind, "name": self.name, "action": self.action,
            "fields": [f.to_json() for f in self.fields],
        }
        if self.policy != "enforce":
            out["policy"] = self.policy
        if self.paused:
            out["paused"] = True
        if self.window:
            out["blockedBy"] = self.window
        if self.waiting:
            out["waiting"] = self.waiting
        for key in ("error", "refused"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.live and self.live.pending:
            out["pending"] = self.live.pending
            if self.live.pending_since:
                out["pendingSince"] = self.live.pending_since
        if self.steps:
            durations = durations or ExpectedDurations(None)
            out["steps"] = [{"description": s.description, **({"waitsFor": s.wait} if s.wait else {}),
                             "expectedSeconds": round(step_seconds(s.takes, durations), 1),
                             **({"work": s.takes} if s.takes else {})} for s in self.steps]
            out["expectedSeconds"] = round(sum(x["expectedSeconds"] for x in out["steps"]), 1)
        if self.notes:
            out["notes"] = self.notes
        return out


@dataclass
class Plan:
    changes: list[Change]
    duration_s: float = 0.0
    api_calls: int = 0
    unmanaged: list[Owned] | None = None  # owned by the agent, declared by no spec; None: could not list
    inventory_error: str | None = None

    def summary(self) -> dict[str, int]:
        counts = dict.fromkeys([a.value for a in Action], 0)
        for c in self.changes:
            counts[c.action] += 1
        return counts

    @property
    def has_changes(self) -> bool:
        return any(c.is_change for c in self.changes)

    @property
    def has_errors(self) -> bool:
        return any(c.action == Action.ERROR for c in self.changes)

    def expected_seconds(self, durations: ExpectedDurations) -> float:
        """How long AWS should take for the whole plan: the longest chain of a resource's steps after the
        ones it depends on (resources that depend on nothing here proceed side by side on AWS's side)."""
        own = {c.ref: sum(step_seconds(s.takes, durations) for s in c.steps) for c in self.changes}
        by_ref = {c.ref: c for c in self.changes}
        done: dict[str, float] = {}

        def finish(ref: str, seen: frozenset[str] = frozenset()) -> float:
            if ref not in done:
                deps = [d for d in by_ref[ref].resource.dependencies() if d in own and d not in seen]
                done[ref] = own[ref] + max((finish(d, seen | {ref}) for d in deps), default=0.0)
            return done[ref]

        return max((finish(ref) for ref in own), default=0.0)

    def to_json(self, durations: ExpectedDurations | None = None) -> dict[str, Any]:
        durations = durations or ExpectedDurations(None)
        out: dict[str, Any] = {"format": PLAN_FORMAT, "changes": [c.to_json(durations) for c in self.changes],
                               "summary": self.summary(), "expectedSeconds": round(self.expected_seconds(durations), 1)}
        if self.unmanaged is not None:
            out["unmanaged"] = [o.to_json() for o in self.unmanaged]
        if self.inventory_error:
            out["unmanagedError"] = self.inventory_error
        return out
