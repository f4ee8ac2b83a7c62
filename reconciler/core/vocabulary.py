"""The agent's words, each said in one place: what a plan does to a resource (`Action`: its symbol, colour and
verbs), how applying a change went (`OutcomeStatus`), the state a resource is in (`ResourceState`: the recorder,
the status store, the page and the reports say these), and what a run's report counts (`Result`).

Each is a StrEnum: its members are the strings plans, /status and events have always carried.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


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
    def words(self) -> ActionWords:
        """How a plan, a report and a pull request comment say it."""
        return _ACTION_WORDS[self]

    @property
    def is_change(self) -> bool:
        return self not in (Action.NOOP, Action.ERROR)

    @property
    def destroys(self) -> bool:
        return self in (Action.DELETE, Action.REPLACE)


class ActionWords(NamedTuple):
    symbol: str            # the plan's mark (Terraform's)
    colour: str | None
    will: str              # the plan's words: `will be created`
    observed: str          # the plan's words when it is not applied (observe-only, paused): `is missing`
    done: str              # the report's words once applied: `created`
    doing: str             # the report's words while AWS carries it out: `deleting`
    icon: str              # the pull request comment's mark


_ACTION_WORDS: dict[Action, ActionWords] = {
    Action.CREATE: ActionWords("+", "green", "will be created", "is missing", "created", "created", "🟢"),
    Action.ADOPT: ActionWords(">", "cyan", "will be adopted (taken over, not recreated)", "could be adopted",
                              "adopted (now managed)", "adopted", "🔵"),
    Action.UPDATE: ActionWords("~", "yellow", "will be updated in place", "has drifted", "updated", "updated", "🟡"),
    Action.REPLACE: ActionWords("-/+", "magenta", "must be replaced", "has drifted in a way that needs replacement",
                                "replaced", "replaced", "🟣"),
    Action.DELETE: ActionWords("-", "red", "will be destroyed", "would be destroyed", "deleted", "deleting", "🔴"),
    Action.NOOP: ActionWords(" ", None, "is up to date", "is up to date", "unchanged", "unchanged", "⚪"),
    Action.ERROR: ActionWords("!", "red", "cannot be planned", "cannot be planned", "failed", "failed", "❗"),
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
    def words(self) -> ResultWords:
        """How the report's lines and its counts line say it."""
        return _RESULT_WORDS[self]

    @classmethod
    def counted(cls) -> tuple[Result, ...]:
        """Always in the counts line, in this order (deleted and not-applied only when there are any)."""
        return (cls.CREATED, cls.UPDATED, cls.PENDING, cls.FAILED, cls.UNCHANGED)


class ResultWords(NamedTuple):
    symbol: str
    said: str              # the counts line's words
    colour: str | None


_RESULT_WORDS: dict[Result, ResultWords] = {
    Result.CREATED: ResultWords("+", "created", "green"),
    Result.UPDATED: ResultWords("~", "updated", "yellow"),
    Result.DELETED: ResultWords("-", "deleted", "red"),
    Result.PENDING: ResultWords("*", "in progress with AWS", "cyan"),
    Result.FAILED: ResultWords("!", "failed", "red"),
    Result.NOT_APPLIED: ResultWords("?", "not applied (observe, paused or held)", "magenta"),
    Result.UNCHANGED: ResultWords(" ", "unchanged", None),
}
