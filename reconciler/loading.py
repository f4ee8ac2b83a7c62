"""Load a spec set: parse and schema-check it (specs.py), then each kind's own rules and references
between specs (the kinds' `check_spec`), in the kinds' apply order. Every problem is collected and
raised together as one SpecError; nothing is half-loaded."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from . import windows
from .durations import parse_duration
from .errors import ReconcilerError, SpecError, SpecProblem
from .resources import registry
from .specs import Spec, SpecSet, format_path, read_specs

# Kinds that are policy, not AWS resources: their own rules, applied before anything else.
POLICY_KINDS = {windows.KIND: windows.check_spec}
MIN_INTERVAL_S = 10.0  # metadata.interval: a resource is checked at most this often


def load_specs(root: str | Path, relative_to: Path | None = None, overrides: Mapping[Path, str] | None = None
               ) -> SpecSet:
    """Load and validate every spec under root; raise SpecError with all problems found.

    `relative_to` names files relative to that directory (a git checkout's root); `overrides` gives
    the text of some files instead of their contents (an edit being checked before it is written).
    """
    specs, files, problems = read_specs(root, relative_to, overrides)
    if not files and problems:
        raise SpecError(problems)
    problems += kind_problems(specs)
    if problems:
        raise SpecError(sorted(problems, key=lambda p: (p.file, p.line or 0, p.path)))
    ordered = sorted(specs, key=lambda s: (0 if s.kind in POLICY_KINDS else registry.get(s.kind).order,
                                           s.kind, s.name))
    return SpecSet(specs=tuple(ordered), files=tuple(files))


def kind_problems(specs: list[Spec]) -> list[SpecProblem]:
    """Rules a JSON Schema cannot express: each kind's own, and references between specs."""
    def rules(spec: Spec) -> list[tuple[tuple[str | int, ...], str]]:
        if spec.kind in POLICY_KINDS:
            return POLICY_KINDS[spec.kind](spec)
        return [*_metadata_rules(spec), *registry.get(spec.kind).check_spec(spec, specs)]

    return [SpecProblem(spec.file, spec.line_of(path), format_path(path), message)
            for spec in specs for path, message in rules(spec)]


def interval_of(spec: Spec) -> float | None:
    """`metadata.interval` in seconds (None: the agent's own interval)."""
    return parse_duration(spec.metadata.interval, "metadata.interval") if spec.metadata.interval else None


def _metadata_rules(spec: Spec) -> list[tuple[tuple[str | int, ...], str]]:
    if not spec.metadata.interval:
        return []
    try:
        seconds = parse_duration(spec.metadata.interval, "metadata.interval")
    except ReconcilerError as exc:
        return [(("metadata", "interval"), str(exc))]
    if seconds < MIN_INTERVAL_S:
        return [(("metadata", "interval"), f"{spec.metadata.interval!r} is shorter than the floor of "
                                           f"{MIN_INTERVAL_S:g}s (a resource is checked at most that often)")]
    return []
