"""The spec types (Metadata, Spec, SpecSet) and reading a spec set: its files (files.py) read as YAML with their
lines (reading.py), each document checked against its kind's schema (schemas.py).

Every problem names the file, the line and the field path. All problems of a spec set are collected and raised
together as one SpecError; nothing is half-loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reconciler.core.errors import SpecProblem
from reconciler.spec.fastschemas import refuses, schema_files
from reconciler.spec.files import display_name, walk_specs
from reconciler.spec.problems import Path_, Problems
from reconciler.spec.reading import read_documents
from reconciler.spec.schemas import ENVIRONMENT_KIND, known_kinds, schema_problems, schema_validators

API_VERSION = "reconciler/v1"


@dataclass(frozen=True)
class Metadata:
    """The engine-level settings every spec carries (DESIGN.md, "Spec format")."""

    name: str
    policy: str = "enforce"
    deletion: str = "retain"
    ignore: tuple[str, ...] = ()
    adopt: bool = False
    external_id: str | None = None
    state: str = "present"
    allow_replacement: bool = False
    security_exceptions: tuple[str, ...] = ()
    paused: bool = False
    write_back: bool = False  # drift of ignored fields is written back to git too
    interval: str | None = None  # how often the agent checks it (`1h`); None: the agent's --interval

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Metadata:
        return cls(
            name=raw["name"],
            policy=raw.get("policy", "enforce"),
            deletion=raw.get("deletion", "retain"),
            ignore=tuple(raw.get("ignore") or ()),
            adopt=bool(raw.get("adopt", False)),
            external_id=raw.get("externalId"),
            state=raw.get("state", "present"),
            allow_replacement=bool(raw.get("allowReplacement", False)),
            security_exceptions=tuple(raw.get("securityExceptions") or ()),
            paused=bool(raw.get("paused", False)),
            write_back=bool(raw.get("writeBack", False)),
            interval=raw.get("interval"),
        )


@dataclass(frozen=True)
class Origin:
    """Where a value of an environment's spec is stated when not in the base document itself: one of the
    environment's `values` (`what="value"`), a patch (`"patch"`), or a `${name}` placeholder inside a longer
    text or with its default (`"template"`, which write-back cannot edit)."""

    what: str
    file: str            # the file that states it, as messages name it
    line: int
    path: Path_ = ()     # where in that file's document (for "value" and "patch")

    def where(self) -> str:
        said = {"value": "the environment's value", "patch": "the patch", "template": "the placeholder"}[self.what]
        return f"{said} at {self.file}:{self.line}"


@dataclass(frozen=True)
class Spec:
    """One validated document: what one resource should look like."""

    kind: str
    metadata: Metadata
    spec: dict[str, Any]
    file: str
    line: int
    lines: Mapping[Path_, int] = field(default_factory=dict, compare=False, repr=False)
    environment: str | None = None  # the environment this spec was built for (None: a plain spec directory)
    source_name: str | None = field(default=None, compare=False, repr=False)  # metadata.name as the file states it
    origins: Mapping[Path_, Origin] = field(default_factory=dict, compare=False, repr=False)
    root: Path | None = field(default=None, compare=False, repr=False)  # what `file` is relative to (None: the cwd)
    # the spec repository: nothing a spec publishes or reads may lie outside it (None: not bounded)
    repository: Path | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def ref(self) -> str:
        """`Kind/name`, how logs, plans and errors name this resource."""
        return f"{self.kind}/{self.name}"

    def path(self, relative_to: Path | None = None) -> Path:
        """The file this spec came from (`file` names it relative to `relative_to`, else to the cwd)."""
        return relative_to / self.file if relative_to is not None else Path(self.file)

    @property
    def source_dir(self) -> Path:
        """The directory of the file this spec came from (for relative paths in specs: a site's directory)."""
        return self.path(self.root).parent

    def origin_of(self, path: Path_) -> tuple[Origin, Path_] | None:
        """Where the value at `path` is stated when not in this document (an environment's value or patch), and
        the rest of `path` below that point; None when the document states it."""
        for n in range(len(path), 0, -1):
            if path[:n] in self.origins:
                return self.origins[path[:n]], path[n:]
        return None

    def line_of(self, path: Path_) -> int:
        """The line of a field path, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.line


@dataclass(frozen=True)
class SpecSet:
    """Every spec of a directory, validated, in a stable order."""

    specs: tuple[Spec, ...]
    files: tuple[str, ...]
    environment: Any = None  # the reconciler.environments.Environment it was built for, if any

    @property
    def environment_name(self) -> str | None:
        return self.environment.name if self.environment is not None else None

    def by_kind(self, kind: str) -> list[Spec]:
        return [s for s in self.specs if s.kind == kind]

    def get(self, kind: str, name: str) -> Spec | None:
        return next((s for s in self.specs if s.kind == kind and s.name == name), None)


# ---------------------------------------------------------------------------- schemas


# ---------------------------------------------------------------------------- YAML




# ---------------------------------------------------------------------------- schema errors


# ---------------------------------------------------------------------------- loading


Transform = Callable[[dict[str, Any], dict[Path_, int], str],
                     tuple[dict[str, Any], dict[Path_, Origin], list[SpecProblem]]]


def read_spec_files(root: str | Path, relative_to: Path | None = None, overrides: Mapping[Path, str] | None = None,
               transform: Transform | None = None, exclude: Iterable[Path] = (), repository: Path | None = None
               ) -> tuple[list[Spec], list[str], list[SpecProblem]]:
    """Parse and schema-validate every spec under root: (specs, file names, problems). The kinds' own
    rules and the order come from the layer above (reconciler.loading.load_specs). `overrides` gives
    the text to read for some files instead of their contents (an edit being checked); `transform` turns
    each document into the one validated (an environment's values and patches) and says where the values
    it put in are stated; `exclude` names files that are not specs (an environment's own document);
    `repository`: the spec repository the specs are bounded by (Spec.repository)."""
    overrides = {p.resolve(): text for p, text in (overrides or {}).items()}
    root = Path(root)
    problems = Problems()
    if not root.exists():
        return [], [], [SpecProblem(str(root), None, "", "no such file or directory")]
    skip = {p.resolve() for p in exclude}
    found, walked = walk_specs(root)
    problems.extend(walked)
    files = [f for f in found if f.resolve() not in skip]
    if not files:
        return [], [], [*problems, SpecProblem(str(root), None, "", "no *.yaml or *.yml files found")]
    specs: list[Spec] = []
    for file in files:
        display = display_name(file, relative_to)
        for doc, lines, first in read_documents(file, display, problems, overrides.get(file.resolve())):
            source_name = doc.get("metadata", {}).get("name") if isinstance(doc.get("metadata"), dict) else None
            origins: dict[Path_, Origin] = {}
            if transform is not None and doc.get("kind") != ENVIRONMENT_KIND:
                doc, origins, trouble = transform(doc, lines, display)
                if trouble:
                    problems.extend(trouble)
                    continue
            spec = _validate_document(doc, lines, first, display, problems, origins)
            if spec is not None:
                specs.append(replace(spec, source_name=source_name if source_name != spec.name else None,
                                     root=relative_to, repository=repository))
    problems.extend(duplicate_problems(specs))
    for spec in specs:
        for ignored in spec.metadata.ignore:
            if not ignored.startswith("spec."):
                problems.add(spec.file, spec.line_of(("metadata", "ignore")), "metadata.ignore",
                             f"{ignored!r} must be a field path starting with 'spec.'")
    return specs, [display_name(f, relative_to) for f in files], list(problems)


def duplicate_problems(specs: list[Spec]) -> list[SpecProblem]:
    """A second spec of the same kind and name (in one directory or across an environment's bases); the
    duplicates are removed from `specs`."""
    seen: dict[tuple[str, str], Spec] = {}
    problems = Problems()
    for spec in list(specs):
        key = (spec.kind, spec.name)
        if key in seen:
            other = seen[key]
            problems.add(spec.file, spec.line_of(("metadata", "name")), "metadata.name",
                         f"duplicate {spec.kind} {spec.name!r} "
                         f"(first defined at {other.file}:{other.line_of(('metadata', 'name'))})")
            specs.remove(spec)
            continue
        seen[key] = spec
    return list(problems)


def _validate_document(
    doc: dict[str, Any], lines: dict[Path_, int], first: int, file: str, problems: Problems,
    origins: Mapping[Path_, Origin] | None = None,
) -> Spec | None:
    def line(path: Path_) -> int:
        while path and path not in lines:
            path = path[:-1]
        return lines.get(path, first)

    if "apiVersion" not in doc:
        problems.add(file, first, "apiVersion", f"missing; every document starts with apiVersion: {API_VERSION}")
        return None
    if doc.get("apiVersion") != API_VERSION:
        problems.add(file, line(("apiVersion",)), "apiVersion",
                     f"{doc.get('apiVersion')!r} is not supported; expected {API_VERSION!r}")
        return None
    kind = doc.get("kind")
    if kind == ENVIRONMENT_KIND:
        problems.add(file, line(("kind",)), "kind", "an Environment is not a resource: give its directory to the "
                                                     f"command ({Path(file).parent}/), not a directory above it")
        return None
    if not isinstance(kind, str) or kind not in schema_files():
        problems.add(file, line(("kind",)), "kind",
                     f"unknown kind {kind!r}; known kinds: {', '.join(known_kinds())}")
        return None
    errors = list(schema_validators()[kind].iter_errors(doc)) if refuses(kind, doc) else []
    spec = Spec(kind=kind, metadata=Metadata.from_dict(doc["metadata"]) if not errors else Metadata(name="?"),
                spec=doc.get("spec") or {}, file=file, line=first, lines=lines, origins=dict(origins or {}))
    for error in errors:
        for path, message in schema_problems(error):
            problems.add(file, line(path), path, message + stated_elsewhere(spec, path))
    return None if errors else spec


def stated_elsewhere(spec: Spec, path: Path_) -> str:
    """` (set by the patch at envs/prod/environment.yaml:9)` when an environment states the value at `path`."""
    found = spec.origin_of(tuple(path))
    return f" (set by {found[0].where()})" if found else ""
