"""decide: what to do to one resource, given what observe found, with ownership, adoption, replacement and
the kind's refusals applied; the steps a change takes (a backup before data is destroyed), and whether it waits
for a resource it depends on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from reconciler.aws.failures import describe_error, describe_failure
from reconciler.core.diff import mark_ignored
from reconciler.core.types import ENV_TAG, NAME_TAG, OWNER_TAG, OWNER_VALUE, FieldChange, Live, Step
from reconciler.core.vocabulary import Action, OutcomeStatus
from reconciler.engine.changes import Change, Plan
from reconciler.kinds import Resource

if TYPE_CHECKING:
    from reconciler.aws.client import Aws

log = structlog.get_logger()


@dataclass
class ObserveFailure:
    """An observation that failed: never read as "absent"."""

    message: str
    exception: BaseException


def decide_safely(resource: Resource, observed: Live | ObserveFailure | None) -> Change:
    """decide(), with a failure of this one resource reported as its error, never the whole plan's."""
    try:
        return decide(resource, observed)
    except Exception as exc:
        live = observed if isinstance(observed, Live) else None
        return Change(resource, Action.ERROR, live=live, error=describe_failure(exc, resource.ref, "planning"))


def decide(resource: Resource, observed: Live | ObserveFailure | BaseException | None) -> Change:
    """The action for one resource, given what observe found (or how it failed)."""
    meta = resource.spec.metadata
    if isinstance(observed, ObserveFailure):
        return Change(resource, Action.ERROR, error=observed.message)
    if isinstance(observed, BaseException):
        return Change(resource, Action.ERROR, error=describe_error(observed))
    live = observed
    if live is not None and live.deleting:
        if meta.state == "absent":
            return Change(resource, Action.NOOP, live=live, notes=["being deleted, as the spec asks"])
        return Change(resource, Action.CREATE, fields=resource.diff(None), live=live,
                      notes=["the previous one is still being deleted; it is created again once it is gone"])
    if meta.state == "absent":
        return _decide_absent(resource, live)
    if live is None:
        return Change(resource, Action.CREATE, fields=resource.diff(None))
    owner = live.owner(resource.spec.environment)
    action = Action.UPDATE
    if owner != resource.name:
        if not meta.adopt:
            return Change(resource, Action.ERROR, live=live, error=_not_owned_message(resource, live))
        action = Action.ADOPT
    fields = mark_ignored(resource.diff(live), meta.ignore)
    change = Change(resource, action, fields=fields, live=live)
    effective = change.effective_fields
    if resource.requires_replacement(effective):
        if action == Action.ADOPT:
            change.refused = ("the existing resource differs in fields that force replacement; "
                              "refusing to adopt it (fix the spec to match it)")
        else:
            change.action = Action.REPLACE
            if not meta.allow_replacement:
                change.refused = (f"this change forces replacement of {resource.ref}"
                                  + (" and destroys its data" if resource.data_bearing else "")
                                  + "; set metadata.allowReplacement: true to allow it")
            change.refused = change.refused or resource.refusal(Action.REPLACE, live)
    elif action == Action.UPDATE and not effective:
        change.action = Action.NOOP
    change.notes += resource.plan_notes(change.action, live)
    return change


def with_steps(change: Change, aws: Aws) -> Change:
    """Fill in the steps a change takes (none for what will not be applied)."""
    if not change.applicable:
        return change
    try:
        change.steps = change_steps(change, aws)
    except Exception as exc:
        change.action, change.error = Action.ERROR, describe_failure(exc, change.ref, "planning")
    return change


def change_steps(change: Change, aws: Aws) -> list[Step]:
    """The steps of one change: the kind's, with what the engine adds (a backup before data is
    destroyed; a wait while the previous resource of that name is still being deleted)."""
    resource, live, fields = change.resource, change.live, change.effective_fields
    if change.action == Action.CREATE and live is not None and live.deleting:
        steps = resource.steps(aws, Action.CREATE, None, fields)
        for step in steps:
            step.wait = step.wait or f"the previous {resource.kind} is still being deleted ({live.pending})"
        return steps
    if change.action not in (Action.REPLACE, Action.DELETE):
        return resource.steps(aws, change.action, live, fields)
    assert live is not None
    steps = _backup_steps(resource, aws, live) + resource.steps(aws, Action.DELETE, live, fields)
    if change.action == Action.REPLACE:
        steps += resource.steps(aws, Action.CREATE, None, fields)
    return steps


def _backup_steps(resource: Resource, aws: Aws, live: Live) -> list[Step]:
    if not resource.data_bearing or type(resource).backup is Resource.backup:
        return []

    def backup() -> None:
        name = resource.backup(aws, live)  # a failed backup stops the delete: nothing is lost
        log.info("apply.backup", kind=resource.kind, name=resource.name, backup=name)

    return [Step(f"back up {resource.ref} before its data is destroyed", backup, wait=live.pending)]


def dependency_wait(change: Change, by_ref: dict[str, Change], results: dict[str, Any] | None) -> str | None:
    """Why a change must wait for a resource it depends on (its dependency failed, or is not there yet and
    will not be made now), in words naming it; None when it may go ahead. A waiting change sends nothing.
    `results`: the outcomes of this apply so far; None while planning (a dependency to be made goes first).
    A delete never waits: what it depended on may go first or not at all."""
    if change.action == Action.DELETE:
        return None
    for ref in change.resource.dependencies():
        needed = by_ref.get(ref)
        if needed is None:
            continue  # not in this plan (a partial one): it is not ours to judge here
        if results is None and needed.applicable and not needed.refused:
            continue
        outcome = (results or {}).get(ref)
        if outcome is not None and outcome.status in (OutcomeStatus.APPLIED, OutcomeStatus.PENDING):
            continue
        if outcome is not None:
            return f"waiting for {ref}: {outcome.status}: {outcome.message}"
        if needed.action == Action.ERROR:
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


def _decide_absent(resource: Resource, live: Live | None) -> Change:
    meta = resource.spec.metadata
    if live is None:
        return Change(resource, Action.NOOP, notes=["absent, as the spec asks"])
    if live.owner(resource.spec.environment) != resource.name:
        return Change(resource, Action.ERROR, live=live, error=(
            f"{resource.ref} exists but is not managed by reconciler{_for(resource.spec.environment)}; "
            "refusing to delete it"))
    change = Change(resource, Action.DELETE, live=live,
                    fields=[FieldChange("metadata.state", "present", "absent")])
    if meta.deletion != "delete":
        change.refused = ("metadata.state is absent but metadata.deletion is retain; "
                          "set deletion: delete to allow deleting it")
    change.refused = change.refused or resource.refusal(Action.DELETE, live)
    change.notes += resource.plan_notes(Action.DELETE, live)
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
