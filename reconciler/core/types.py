"""Types shared by the engine and the resource modules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

OWNER_TAG = "managed-by"
OWNER_VALUE = "reconciler"
ROLE_TAG = "reconciler:role"  # the agent's own infrastructure...
LEASE_ROLE = "lease"  # ...such as the lease table
NAME_TAG = "reconciler:name"
ENV_TAG = "reconciler:env"  # the environment (envs/prod: `prod`) whose agent owns it; absent for a plain spec set
OWNERSHIP_TAGS = (OWNER_TAG, NAME_TAG, ENV_TAG)


def ownership_tags(name: str, environment: str | None = None) -> dict[str, str]:
    """The tags that mark a resource as created (or adopted) by the agent for spec `name` (of `environment`)."""
    tags = {OWNER_TAG: OWNER_VALUE, NAME_TAG: name}
    if environment:
        tags[ENV_TAG] = environment
    return tags


def owned_by(tags: dict[str, str], environment: str | None) -> bool:
    """Whether tags mark a resource as the agent's for `environment` (two environments in one account never
    take each other's resources for theirs)."""
    return tags.get(OWNER_TAG) == OWNER_VALUE and tags.get(ENV_TAG) == environment


@dataclass
class Live:
    """What observe found: the managed fields in spec shape, plus identity and ownership."""

    id: str
    state: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)
    pending: str | None = None          # what AWS is doing to it now ("table UPDATING"); None = settled
    pending_since: str | None = None    # since when, where AWS says (ISO 8601)
    deleting: bool = False              # AWS is deleting it: gone soon, its name not yet free
    extra: dict[str, Any] = field(default_factory=dict)  # private to the resource module
    claimed_by: str | None = None       # an interrupted create of this agent's, not yet tagged
    # what observe left to do once the cycle's shared listings are in (filling tags from the bulk listing):
    # run by finish(), so that no reader waits for a listing while others could still be read
    later: list[Callable[[Live], None]] = field(default_factory=list, repr=False, compare=False)

    def finish(self) -> Live:
        """Run what observe left for later; the Live is then complete."""
        while self.later:
            self.later.pop(0)(self)
        return self

    def owner(self, environment: str | None = None) -> str | None:
        """The spec name that owns this resource, or None when the agent (of `environment`) does not own it."""
        if self.claimed_by is not None:
            return self.claimed_by
        if not owned_by(self.tags, environment):
            return None
        return self.tags.get(NAME_TAG, "")


@dataclass
class FieldChange:
    """One field that differs between the spec and what is live."""

    path: str
    before: Any
    after: Any
    forces_replacement: bool = False
    sensitive: bool = False
    ignored: bool = False
    entry: str | None = None  # the key of a keyed list's entry it belongs to (`UserId=u-101`)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "before": self.before, "after": self.after}
        if self.sensitive:
            out["before"] = out["after"] = "(sensitive)"
            out["sensitive"] = True
        if self.forces_replacement:
            out["forcesReplacement"] = True
        if self.ignored:
            out["ignored"] = True
        return out


class NotYet(Exception):
    """AWS will not take a step yet, for a reason of AWS's (a rule, work it is still doing): the change is
    `pending`, never failed, and a later cycle tries again (`until`: when, as epoch seconds, if known)."""

    def __init__(self, reason: str, until: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.until = until


@dataclass
class Step:
    """One unit of work AWS accepts as such (usually one call), as the plan shows it and apply runs it.

    settles: AWS is busy after it (a table UPDATING, a cache modifying): the steps after it wait
             until AWS has finished, which apply checks at once and later cycles check again.
    wait:    why it cannot run now (what AWS is doing); None = it can. A step is never issued while
             it waits: AWS would refuse it.
    takes:   the work AWS does after it, as TYPICAL_DURATIONS names it (how long it usually takes);
             None: a call AWS answers at once.
    """

    description: str
    run: Callable[[], None]
    settles: bool = False
    wait: str | None = None
    takes: str | None = None


@dataclass
class Request:
    """A call a spec's creation (or tagging) sends, built from the spec alone, with placeholders for what AWS assigns
    (a security group's id): `validate` checks it against AWS's rules before any call is made.

    where:  the spec field its values come from (where a problem is said);
    tags:   the tag set it writes, checked against the service's tag rules;
    kept:   tags the agent adds to the resource later that count beside them (its bookkeeping tags);
    model:  also check it against botocore's model of the call (False where the model states nothing for these
            members, and loading it would only cost time: EC2's 3.6 MB).
    """

    service: str
    operation: str
    params: dict[str, Any]
    where: tuple[str | int, ...] = ("spec",)
    tags: dict[str, str] | None = None
    kept: int = 0
    model: bool = True

