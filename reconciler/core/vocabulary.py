"""The agent's words, each said in one place: what a plan does to a resource (`Action`: its symbol, colour and
verbs), how applying a change went (`OutcomeStatus`), the state a resource is in (`ResourceState`: the recorder,
the status store, the page and the reports say these), and what a run's report counts (`Result`).

Each is a StrEnum: its members are the strings plans, /status and events have always carried.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """What a plan does to one resource."""

    CREATE = "create"
    ADOPT = "adopt"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    NOOP = "noop"
    ERROR = "error"

    @property
    def symbol(self) -> str:
        """The plan's mark for it (Terraform's)."""
        return _ACTION_WORDS[self][0]

    @property
    def colour(self) -> str | None:
        return _ACTION_WORDS[self][1]

    @property
    def will(self) -> str:
        """The plan's words: `will be created`."""
        return _ACTION_WORDS[self][2]

    @property
    def observed(self) -> str:
        """The plan's words when it is not applied (observe-only, paused): `is missing`."""
        return _ACTION_WORDS[self][3]

    @property
    def done(self) -> str:
        """The report's words once applied: `created`."""
        return _ACTION_WORDS[self][4]

    @property
    def doing(self) -> str:
        """The report's words while AWS carries it out: `created` (for a create in progress), `deleting`."""
        return _ACTION_WORDS[self][5]

    @property
    def icon(self) -> str:
        """The pull request comment's mark."""
        return _ACTION_WORDS[self][6]

    @property
    def is_change(self) -> bool:
        return self not in (Action.NOOP, Action.ERROR)

    @property
    def destroys(self) -> bool:
        return self in (Action.DELETE, Action.REPLACE)


#           symbol  colour     will                                              observed
#           done                        doing        icon
_ACTION_WORDS: dict[Action, tuple[str, str | None, str, str, str, str, str]] = {
    Action.CREATE: ("+", "green", "will be created", "is missing", "created", "created", "🟢"),
    Action.ADOPT: (">", "cyan", "will be adopted (taken over, not recreated)", "could be adopted",
                   "adopted (now managed)", "adopted", "🔵"),
    Action.UPDATE: ("~", "yellow", "will be updated in place", "has drifted", "updated", "updated", "🟡"),
    Action.REPLACE: ("-/+", "magenta", "must be replaced", "has drifted in a way that needs replacement", "replaced",
                     "replaced", "🟣"),
    Action.DELETE: ("-", "red", "will be destroyed", "would be destroyed", "deleted", "deleting", "🔴"),
    Action.NOOP: (" ", None, "is up to date", "is up to date", "unchanged", "unchanged", "⚪"),
    Action.ERROR: ("!", "red", "cannot be planned", "cannot be planned", "failed", "failed", "❗"),
}


class OutcomeStatus(StrEnum):
    """How applying one change went."""

    APPLIED = "applied"    # every step AWS takes now was sent and accepted
    PENDING = "pending"    # a step waits for AWS (it is working, or a rule of its holds the next one)
    FAILED = "failed"
    REFUSED = "refused"    # a safety rule forbids it
    WAITING = "waiting"    # for another resource that failed or is not there yet: nothing sent

    @property
    def ok(self) -> bool:
        """Nothing went wrong (waiting for a dependency is not a failure)."""
        return self in (OutcomeStatus.APPLIED, OutcomeStatus.PENDING, OutcomeStatus.WAITING)


class ResourceState(StrEnum):
    """The state a resource is in, as /status, the page, the metrics and the reports say it."""

    IN_SYNC = "in-sync"
    DRIFTED = "drifted"
    PENDING = "pending"               # AWS is working on it, or an AWS rule holds its next step
    WAITING = "waiting"               # for a named dependency that failed or is not there yet
    ERROR = "error"                   # a failure of this resource itself
    PAUSED = "paused"
    WINDOW_BLOCKED = "window-blocked"

    @property
    def settling(self) -> bool:
        """Work is under way or held: the agent looks again soon (--pending-interval)."""
        return self in (ResourceState.PENDING, ResourceState.WAITING)

    @property
    def shows_fields(self) -> bool:
        """/status and the page show the fields that differ."""
        return self is not ResourceState.IN_SYNC

    @property
    def progressing(self) -> bool:
        """The page's `progressing` at a glance (neither healthy nor degraded)."""
        return self in (ResourceState.PENDING, ResourceState.WAITING, ResourceState.DRIFTED,
                        ResourceState.WINDOW_BLOCKED)


class Result(StrEnum):
    """What a run's report counts a resource as (`2 created, 1 updated, 3 in progress with AWS, ...`)."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    PENDING = "pending"
    FAILED = "failed"
    NOT_APPLIED = "not-applied"
    UNCHANGED = "unchanged"

    @property
    def symbol(self) -> str:
        return _RESULT_WORDS[self][0]

    @property
    def said(self) -> str:
        """The counts line's words."""
        return _RESULT_WORDS[self][1]

    @property
    def colour(self) -> str | None:
        return _RESULT_WORDS[self][2]

    @classmethod
    def counted(cls) -> tuple[Result, ...]:
        """Always in the counts line, in this order (deleted and not-applied only when there are any)."""
        return (cls.CREATED, cls.UPDATED, cls.PENDING, cls.FAILED, cls.UNCHANGED)


_RESULT_WORDS: dict[Result, tuple[str, str, str | None]] = {
    Result.CREATED: ("+", "created", "green"),
    Result.UPDATED: ("~", "updated", "yellow"),
    Result.DELETED: ("-", "deleted", "red"),
    Result.PENDING: ("*", "in progress with AWS", "cyan"),
    Result.FAILED: ("!", "failed", "red"),
    Result.NOT_APPLIED: ("?", "not applied (observe, paused or held)", "magenta"),
    Result.UNCHANGED: (" ", "unchanged", None),
}
