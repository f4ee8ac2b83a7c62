"""Load a spec set: parse and schema-check it (specs.py), then each kind's own rules and references
between specs (the kinds' `check_spec`), in the kinds' apply order. Every problem is collected and
raised together as one SpecError; nothing is half-loaded."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from reconciler.core.duration_text import parse_duration
from reconciler.core.errors import ReconcilerError, SpecError, SpecProblem
from reconciler.engine.requestcheck import request_problems
from reconciler.kinds import registry
from reconciler.kinds.interfaces import Validated
from reconciler.spec import windows
from reconciler.spec.documents import Spec, SpecSet, duplicate_problems, read_spec_files, stated_elsewhere
from reconciler.spec.environments import Environment, Substitution, environment_file, read_environment
from reconciler.spec.problems import format_path

# Kinds that are policy, not AWS resources: their own rules, applied before anything else.
POLICY_KINDS = {windows.KIND: windows.check_spec}
MIN_INTERVAL_S = 10.0  # metadata.interval: a resource is checked at most this often


def load_specs(root: str | Path, relative_to: Path | None = None, overrides: Mapping[Path, str] | None = None
               ) -> SpecSet:
    """Load and validate every spec under root; raise SpecError with all problems found.

    `relative_to` names files relative to that directory (a git checkout's root); `overrides` gives
    the text of some files instead of their contents (an edit being checked before it is written).
    """
    root = Path(root)
    env_file = environment_file(root)
    if env_file is not None:
        return _load_environment(env_file, relative_to, overrides or {})
    specs, files, problems = read_spec_files(root, relative_to, overrides, transform=Substitution(),
                                        repository=repository_of([root], relative_to))
    if not files and problems:
        raise SpecError(problems)
    return _checked(specs, files, problems)


def _load_environment(env_file: Path, relative_to: Path | None, overrides: Mapping[Path, str]) -> SpecSet:
    """An environment's spec set: its bases and its own directory, with its values and patches."""
    text = next((t for p, t in overrides.items() if p.resolve() == env_file.resolve()), None)
    environment, problems = read_environment(env_file, relative_to, text)
    if environment is None:
        raise SpecError(problems)
    substitution = Substitution(environment)
    specs: list[Spec] = []
    files: list[str] = []
    repository = repository_of([environment.directory, *environment.bases], relative_to)
    problems += _outside(environment, repository)
    for directory in (*environment.bases, environment.directory):
        found, names, more = read_spec_files(directory, relative_to, overrides, transform=substitution,
                                        exclude=[env_file], repository=repository)
        if directory == environment.directory and not names:
            continue  # an environment's own directory may hold nothing but its document
        specs += found
        files += names
        problems += more
    problems += duplicate_problems(specs)
    if not problems:  # a value or patch looks unused when the documents that use it did not load
        problems += substitution.leftover_problems()
    specs = [replace(s, environment=environment.name) for s in specs]
    return replace(_checked(specs, [environment.file, *files], problems), environment=environment)


def repository_of(roots: list[Path], relative_to: Path | None) -> Path:
    """The spec repository that bounds what specs publish and read: the git checkout the agent follows
    (`relative_to`), else the git work tree holding the spec directories, else the directory holding them
    (their common parent: `specs/` and the `site/` beside it)."""
    if relative_to is not None:
        return relative_to.resolve()
    first = roots[0].resolve()
    start = first if first.is_dir() else first.parent
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    parents = [(r.resolve() if r.resolve().is_dir() else r.resolve().parent).parent for r in roots]
    return Path(os.path.commonpath(parents))


def _outside(environment: Environment, repository: Path) -> list[SpecProblem]:
    """An environment's bases must lie inside the spec repository (nothing is read from elsewhere on the disk)."""
    return [SpecProblem(environment.file, environment.line_of(("spec", "base", i)), f"spec.base[{i}]",
                        f"{base} is outside the spec repository ({repository}): a base is a directory of it")
            for i, base in enumerate(environment.bases) if not base.resolve().is_relative_to(repository)]


def _checked(specs: list[Spec], files: list[str], problems: list[SpecProblem]) -> SpecSet:
    problems = [*problems, *kind_problems(specs)]
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
        kind = registry.get(spec.kind)
        if not issubclass(kind, Validated):
            return _metadata_rules(spec)
        own = [*_metadata_rules(spec), *kind.check_spec(spec, specs)]
        if spec.metadata.state == "absent":  # a tombstone creates nothing
            return own
        return [*own, *request_problems(kind(spec, specs))]

    return [SpecProblem(spec.file, spec.line_of(path), format_path(path), message + stated_elsewhere(spec, path))
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
