"""Exceptions that carry what a user needs to act, rendered once at the CLI edge."""

from __future__ import annotations

from dataclasses import dataclass


class ReconcilerError(Exception):
    """Base class: a problem the user can act on (never shown as a traceback)."""


@dataclass(frozen=True)
class SpecProblem:
    """One problem in one spec file, at a line and field path."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SpecError(ReconcilerError):
    """The spec set failed to load or validate; carries every problem found."""

    def __init__(self, problems: list[SpecProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class AwsError(ReconcilerError):
    """An AWS call failed for a resource: names the resource and the call."""

    def __init__(self, resource: str, operation: str, message: str, code: str = ""):
        self.resource = resource
        self.operation = operation
        self.code = code
        super().__init__(f"{resource}: {operation} failed: {message}")


class RefusedError(ReconcilerError):
    """A change that a safety rule does not allow (unowned resource, replacement, deletion)."""
