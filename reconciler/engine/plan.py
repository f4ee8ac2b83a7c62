"""observe + decide -> Plan: every resource read at once (one bulk tag listing), each decided, the budget of
deletes and the change windows applied once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from reconciler.aws.failures import describe_failure, wants_traceback
from reconciler.core.types import Live
from reconciler.core.vocabulary import Action
from reconciler.engine.changes import Change, Plan
from reconciler.engine.decide import ObserveFailure, decide_safely, mark_waiting, with_steps
from reconciler.engine.inventory import list_owned, owned_resources, unmanaged
from reconciler.kinds import Resource, registry
from reconciler.spec.windows import blocked, windows_of

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.spec.documents import SpecSet

log = structlog.get_logger()


def build_resources(specs: SpecSet) -> list[Resource]:
    """One Resource per spec of an AWS kind (policy specs, such as change windows, are not resources)."""
    kinds = set(registry.kinds())
    return [registry.get(s.kind)(s, specs.specs) for s in specs.specs if s.kind in kinds]


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
    changes = [with_steps(decide_safely(r, o), aws) for r, o in zip(resources, observed, strict=True)]
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


DEFAULT_MAX_DESTROY = 3


def enforce_budget(plan: Plan, max_destroy: int) -> Plan:
    """Refuse every delete and replace of a cycle that has more of them than the budget: a
    spec set that suddenly asks for many destructive changes is more likely a mistake."""
    destructive = [c for c in plan.changes if c.action in (Action.DELETE, Action.REPLACE) and c.applicable]
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


def planned(specs: SpecSet, aws: Aws, *, workers: int, max_destroy: int, manual: bool = False) -> Plan:
    """The plan a command shows and applies: every resource planned, then the budget of deletes and the change
    windows (`manual`: a hand-run apply, which windows with `manual: true` let through)."""
    return enforce_windows(enforce_budget(make_plan(specs, aws, workers=workers), max_destroy), specs, manual=manual)
