"""observe + diff -> Plan, with ownership, adoption, policies and safety rules applied once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from reconciler.aws.client import describe_error, describe_failure, wants_traceback
from reconciler.aws.expected import Durations, step_seconds
from reconciler.core.diff import mark_ignored
from reconciler.core.types import ENV_TAG, NAME_TAG, OWNER_TAG, OWNER_VALUE, FieldChange, Live, Step
from reconciler.engine.inventory import Owned, list_owned, owned_resources, unmanaged
from reconciler.kinds import Resource, registry
from reconciler.spec.windows import blocked, windows_of

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.spec.documents import SpecSet

log = structlog.get_logger()

ACTIONS = ("create", "adopt", "update", "replace", "delete", "noop")
PLAN_FORMAT = "reconciler.plan/v1"


@dataclass
class Change:
    """What the agent will do (or would do) to one resource, and why not if it won't."""

    resource: Resource
    action: str                       # one of ACTIONS, or "error"
    fields: list[FieldChange] = field(default_factory=list)
    live: Live | None = None
    error: str | None = None          # planning failed, or the resource may not be touched
    refused: str | None = None        # planned, but a safety rule forbids applying it
    notes: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)  # the work, in AWS's order (see Resource.steps)
    window: str | None = None         # a change window blocks it now (which, until when)
    operator_paused: bool = False     # paused by an operator on the agent's page (not in the spec)
    waiting: str | None = None        # a resource it depends on failed or will not be made: waits, sends nothing

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
        return self.action not in ("noop", "error")

    @property
    def paused(self) -> bool:
        return self.resource.spec.metadata.paused or self.operator_paused

    @property
    def applicable(self) -> bool:
        """Would `apply` act on this change? Not when refused, observed only, or paused."""
        return (self.is_change and not self.refused and self.policy == "enforce" and not self.paused
                and not self.window)

    def to_json(self, durations: Durations | None = None) -> dict[str, Any]:
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
            durations = durations or Durations(None)
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
        counts = dict.fromkeys((*ACTIONS, "error"), 0)
        for c in self.changes:
            counts[c.action] += 1
        return counts

    @property
    def has_changes(self) -> bool:
        return any(c.is_change for c in self.changes)

    @property
    def has_errors(self) -> bool:
        return any(c.action == "error" for c in self.changes)

    def expected_seconds(self, durations: Durations) -> float:
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

    def to_json(self, durations: Durations | None = None) -> dict[str, Any]:
        durations = durations or Durations(None)
        out: dict[str, Any] = {"format": PLAN_FORMAT, "changes": [c.to_json(durations) for c in self.changes],
                               "summary": self.summary(), "expectedSeconds": round(self.expected_seconds(durations), 1)}
        if self.unmanaged is not None:
            out["unmanaged"] = [o.to_json() for o in self.unmanaged]
        if self.inventory_error:
            out["unmanagedError"] = self.inventory_error
        return out


def build_resources(specs: SpecSet) -> list[Resource]:
    """One Resource per spec of an AWS kind (policy specs, such as change windows, are not resources)."""
    kinds = set(registry.kinds())
    return [registry.get(s.kind)(s, specs.specs) for s in specs.specs if s.kind in kinds]


@dataclass
class ObserveFailure:
    """An observation that failed: never read as "absent"."""

    message: str
    exception: BaseException


def observe_all(resources: Iterable[Resource], aws: Aws, workers: int = 16
                ) -> list[Live | ObserveFailure | None]:
    """Observe every resource concurrently; a failure is returned as such, never as absent."""

    def guarded(resource: Resource, step: Callable[[], Live | None]) -> Live | ObserveFailure | None:
        try:
            return step()
        except Exception as exc:
            message = describe_failure(exc, resource.ref, "observing")  # on this thread: it knows the call
            log.warning("observe.error", kind=resource.kind, name=resource.name, error=message,
                        exc_info=wants_traceback(exc))
            return ObserveFailure(message, exc)

    def observe(resource: Resource) -> Live | ObserveFailure | None:
        def read() -> Live | None:
            resource.prepare(aws)
            return resource.observe(aws)

        return guarded(resource, read)

    def finish(pair: tuple[Resource, Live | ObserveFailure | None]) -> Live | ObserveFailure | None:
        resource, found = pair
        return guarded(resource, found.finish) if isinstance(found, Live) else found

    resources = list(resources)
    if not resources:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(resources)))) as pool:
        found = list(pool.map(observe, resources))  # every resource's own reads first, then what waited
        return list(pool.map(finish, zip(resources, found, strict=True)))  # for a shared listing


def make_plan(specs: SpecSet, aws: Aws, workers: int = 16, only: Iterable[str] | None = None,
              known: dict[str, Change] | None = None) -> Plan:
    """One dry cycle: observe, compare, decide. Never writes.

    `only`: the refs to plan (None: every resource of the spec set). For the whole set, or more than one of
    it, one bulk tag listing serves their tags and also names what the agent owns that no spec of the whole
    set declares (the unmanaged). A single resource of a larger set (an event's reconcile) reads its own.
    `known`: the last plan's changes of resources not planned now (a dependency's state, for `waiting`).
    """
    started = time.monotonic()
    aws.new_cycle()
    calls_before = sum(aws.call_counts().values())
    wanted = set(only) if only is not None else None
    resources = [r for r in build_resources(specs) if wanted is None or r.ref in wanted]
    bulk = wanted is None or len(resources) > 1
    with ThreadPoolExecutor(max_workers=1) as lister:
        # one listing, read alongside the rest: every managed resource's tags, and what no spec declares
        listing = lister.submit(list_owned, aws) if bulk else None
        if listing is not None:
            aws.use_tag_listing(listing)
        observed = observe_all(resources, aws, workers)
    peers = {**{ref: c.live for ref, c in (known or {}).items()},
             **{r.ref: (o if isinstance(o, Live) else None) for r, o in zip(resources, observed, strict=True)}}
    for resource in resources:
        resource.peers = peers
    changes = [with_steps(_decide_safely(r, o), aws) for r, o in zip(resources, observed, strict=True)]
    plan = mark_waiting(Plan(changes), known or {})
    if listing is not None:
        try:
            plan.unmanaged = unmanaged(owned_resources(listing.result(), specs.environment_name),
                                       [(s.kind, s.name) for s in specs.specs])
        except Exception as exc:  # it informs and saves calls; it never stops a plan (tags were read one by one)
            plan.inventory_error = describe_failure(exc, "the inventory", "listing")
            log.warning("inventory.error", error=plan.inventory_error)
    plan.duration_s = time.monotonic() - started
    plan.api_calls = sum(aws.call_counts().values()) - calls_before
    return plan


def dependency_wait(change: Change, by_ref: dict[str, Change], results: dict[str, Any] | None) -> str | None:
    """Why a change must wait for a resource it depends on (its dependency failed, or is not there yet and
    will not be made now), in words naming it; None when it may go ahead. A waiting change sends nothing.
    `results`: the outcomes of this apply so far; None while planning (a dependency to be made goes first).
    A delete never waits: what it depended on may go first or not at all."""
    if change.action == "delete":
        return None
    for ref in change.resource.dependencies():
        needed = by_ref.get(ref)
        if needed is None:
            continue  # not in this plan (a partial one): it is not ours to judge here
        if results is None and needed.applicable and not needed.refused:
            continue
        outcome = (results or {}).get(ref)
        if outcome is not None and outcome.status in ("applied", "pending"):
            continue
        if outcome is not None:
            return f"waiting for {ref}: {outcome.status}: {outcome.message}"
        if needed.action == "error":
            return f"waiting for {ref}: {needed.error}"
        if needed.live is None or needed.live.deleting:
            return f"waiting for {ref}: it does not exist yet ({_why_not_made(needed)})"
    return None


def _why_not_made(change: Change) -> str:
    if change.paused:
        return "paused"
    if change.window:
        return f"held by {change.window}"
    if change.policy != "enforce":
        return "policy: observe"
    if change.refused:
        return f"refused: {change.refused}"
    return "it failed before and is retried later" if change.applicable else "it is not to be created"


def mark_waiting(plan: Plan, known: dict[str, Change] | None = None) -> Plan:
    """Changes whose dependency failed or will not be made: shown waiting, with nothing to send. `known`: the
    last changes of resources not in this plan."""
    by_ref = {**(known or {}), **{c.ref: c for c in plan.changes}}
    for change in plan.changes:
        if change.applicable and (waiting := dependency_wait(change, by_ref, None)):
            change.waiting = waiting
            for step in change.steps:
                step.wait = step.wait or waiting
    return plan


def _decide_safely(resource: Resource, observed: Live | ObserveFailure | None) -> Change:
    """decide(), with a failure of this one resource reported as its error, never the whole plan's."""
    try:
        return decide(resource, observed)
    except Exception as exc:
        live = observed if isinstance(observed, Live) else None
        return Change(resource, "error", live=live, error=describe_failure(exc, resource.ref, "planning"))


def decide(resource: Resource, observed: Live | ObserveFailure | BaseException | None) -> Change:
    """The action for one resource, given what observe found (or how it failed)."""
    meta = resource.spec.metadata
    if isinstance(observed, ObserveFailure):
        return Change(resource, "error", error=observed.message)
    if isinstance(observed, BaseException):
        return Change(resource, "error", error=describe_error(observed))
    live = observed
    if live is not None and live.deleting:
        if meta.state == "absent":
            return Change(resource, "noop", live=live, notes=["being deleted, as the spec asks"])
        return Change(resource, "create", fields=resource.diff(None), live=live,
                      notes=["the previous one is still being deleted; it is created again once it is gone"])
    if meta.state == "absent":
        return _decide_absent(resource, live)
    if live is None:
        return Change(resource, "create", fields=resource.diff(None))
    owner = live.owner(resource.spec.environment)
    action = "update"
    if owner != resource.name:
        if not meta.adopt:
            return Change(resource, "error", live=live, error=_not_owned_message(resource, live))
        action = "adopt"
    fields = mark_ignored(resource.diff(live), meta.ignore)
    change = Change(resource, action, fields=fields, live=live)
    effective = change.effective_fields
    if resource.requires_replacement(effective):
        if action == "adopt":
            change.refused = ("the existing resource differs in fields that force replacement; "
                              "refusing to adopt it (fix the spec to match it)")
        else:
            change.action = "replace"
            if not meta.allow_replacement:
                change.refused = (f"this change forces replacement of {resource.ref}"
                                  + (" and destroys its data" if resource.data_bearing else "")
                                  + "; set metadata.allowReplacement: true to allow it")
            change.refused = change.refused or resource.refusal("replace", live)
    elif action == "update" and not effective:
        change.action = "noop"
    change.notes += resource.plan_notes(change.action, live)
    return change


def with_steps(change: Change, aws: Aws) -> Change:
    """Fill in the steps a change takes (none for what will not be applied)."""
    if not change.applicable:
        return change
    try:
        change.steps = change_steps(change, aws)
    except Exception as exc:
        change.action, change.error = "error", describe_failure(exc, change.ref, "planning")
    return change


def change_steps(change: Change, aws: Aws) -> list[Step]:
    """The steps of one change: the kind's, with what the engine adds (a backup before data is
    destroyed; a wait while the previous resource of that name is still being deleted)."""
    resource, live, fields = change.resource, change.live, change.effective_fields
    if change.action == "create" and live is not None and live.deleting:
        steps = resource.steps(aws, "create", None, fields)
        for step in steps:
            step.wait = step.wait or f"the previous {resource.kind} is still being deleted ({live.pending})"
        return steps
    if change.action not in ("replace", "delete"):
        return resource.steps(aws, change.action, live, fields)
    assert live is not None
    steps = _backup_steps(resource, aws, live) + resource.steps(aws, "delete", live, fields)
    if change.action == "replace":
        steps += resource.steps(aws, "create", None, fields)
    return steps


def _backup_steps(resource: Resource, aws: Aws, live: Live) -> list[Step]:
    if not resource.data_bearing or type(resource).backup is Resource.backup:
        return []

    def backup() -> None:
        name = resource.backup(aws, live)  # a failed backup stops the delete: nothing is lost
        log.info("apply.backup", kind=resource.kind, name=resource.name, backup=name)

    return [Step(f"back up {resource.ref} before its data is destroyed", backup, wait=live.pending)]


DEFAULT_MAX_DESTROY = 3


def enforce_budget(plan: Plan, max_destroy: int) -> Plan:
    """Refuse every delete and replace of a cycle that has more of them than the budget: a
    spec set that suddenly asks for many destructive changes is more likely a mistake."""
    destructive = [c for c in plan.changes if c.action in ("delete", "replace") and c.applicable]
    if len(destructive) > max_destroy:
        for change in destructive:
            change.refused = (f"{len(destructive)} deletes/replaces in one cycle exceed the budget of "
                              f"{max_destroy}; raise --max-destroy to allow them")
    return plan


def enforce_windows(plan: Plan, specs: SpecSet, manual: bool = False, now: datetime | None = None) -> Plan:
    """Hold back the changes a change window blocks now (`manual`: a hand-run apply, which windows with
    `manual: true` let through). They stay in the plan, marked with the window and until when."""
    found = windows_of(specs.specs)
    for change in plan.changes if found else []:
        if change.applicable and (block := blocked(found, change.ref, now, manual)):
            change.window = block.message()
    return plan


def _decide_absent(resource: Resource, live: Live | None) -> Change:
    meta = resource.spec.metadata
    if live is None:
        return Change(resource, "noop", notes=["absent, as the spec asks"])
    if live.owner(resource.spec.environment) != resource.name:
        return Change(resource, "error", live=live, error=(
            f"{resource.ref} exists but is not managed by reconciler{_for(resource.spec.environment)}; "
            "refusing to delete it"))
    change = Change(resource, "delete", live=live,
                    fields=[FieldChange("metadata.state", "present", "absent")])
    if meta.deletion != "delete":
        change.refused = ("metadata.state is absent but metadata.deletion is retain; "
                          "set deletion: delete to allow deleting it")
    change.refused = change.refused or resource.refusal("delete", live)
    change.notes += resource.plan_notes("delete", live)
    return change


def _not_owned_message(resource: Resource, live: Live) -> str:
    env = resource.spec.environment
    if live.tags.get(OWNER_TAG) != OWNER_VALUE:
        return (f"{resource.ref} exists but was not created by reconciler (no managed-by=reconciler "
                f"tag); it is left untouched. To take it over, set metadata.adopt: true")
    if live.tags.get(ENV_TAG) != env:
        theirs = live.tags.get(ENV_TAG)
        return (f"{resource.ref} is managed by reconciler{_for(theirs) or ' without an environment'}, not"
                f"{_for(env) or ' without one'}; it is left untouched. Give it another name in this environment "
                "(a value in the name), or set metadata.adopt: true to take it over")
    return (f"{resource.ref} is managed by another spec ({live.tags.get(NAME_TAG, '')!r}); it is left untouched. "
            f"To take it over, set metadata.adopt: true")


def _for(environment: str | None) -> str:
    return f" for environment {environment!r}" if environment else ""
