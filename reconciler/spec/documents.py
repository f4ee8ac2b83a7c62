"""Load spec files, validate them against schemas/, and return typed desired state.

Every problem names the file, the line and the field path. All problems of a spec set
are collected and raised together as one SpecError; nothing is half-loaded.

Over 500 lines because line numbers are its job end to end: YAML nodes to values with their lines, the
schemas' errors turned into words at those lines, and the spec types that keep them for later messages.
"""

from __future__ import annotations

import datetime as _dt
import errno
import functools
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from reconciler.core.errors import SpecProblem

API_VERSION = "reconciler/v1"
_MAX_DEPTH = 64
# Values one document may expand to. YAML aliases repeat a node without repeating its text, so a few
# hundred bytes can stand for billions of values (an "alias bomb"); a real spec has a few hundred.
MAX_VALUES = 100_000
MAX_FILE_BYTES = 10 * 2**20  # a spec file over this is refused unread (a stack's specs are a few KiB)
Path_ = tuple[str | int, ...]


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


def schema_dir() -> Path:
    """Where the JSON Schemas live: packaged in a wheel, or schemas/ in a checkout."""
    packaged = Path(__file__).parent.parent / "_schemas"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent.parent / "schemas"


@functools.cache
def _validators() -> dict[str, Draft202012Validator]:
    """One Draft 2020-12 validator per kind, its `$ref`s to the common schemas and its own `$defs` inlined:
    resolving them at each document costs more than validating it (a thousand specs load in half the time)."""
    schemas = [json.loads(p.read_text()) for p in sorted(schema_dir().glob("*.schema.json"))]
    registry: Registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in schemas
    )
    return {
        s["properties"]["kind"]["const"]: Draft202012Validator(_inlined(s, s, registry), registry=registry)
        for s in schemas
        if "kind" in s.get("properties", {})
    }


def _inlined(node: Any, root: dict[str, Any], registry: Registry, depth: int = 0) -> Any:
    """`node` with every `$ref` replaced by what it points at (its siblings kept beside it in an allOf)."""
    if depth > 20:  # a recursive schema: left to the validator's own resolution
        return node
    if isinstance(node, list):
        return [_inlined(v, root, registry, depth) for v in node]
    if not isinstance(node, dict):
        return node
    if isinstance(node.get("$ref"), str):
        target, target_root = _resolve(node["$ref"], root, registry)
        inlined = _inlined(target, target_root, registry, depth + 1)
        rest = {k: _inlined(v, root, registry, depth) for k, v in node.items() if k != "$ref"}
        return {**rest, "allOf": [*rest.get("allOf", []), inlined]} if rest else inlined
    return {k: (v if k == "$defs" else _inlined(v, root, registry, depth)) for k, v in node.items()}


def _resolve(ref: str, root: dict[str, Any], registry: Registry) -> tuple[Any, dict[str, Any]]:
    """The subschema `ref` names (`urn:...#/$defs/x` or `#/$defs/x`), and the schema it lives in."""
    base, _, pointer = ref.partition("#")
    document = registry.contents(base) if base else root
    target: Any = document
    for part in [p for p in pointer.split("/") if p]:
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return target, document


ENVIRONMENT_KIND = "Environment"  # not a resource: the document that builds a spec set (environments.py)


def known_kinds() -> list[str]:
    return sorted(k for k in _validators() if k != ENVIRONMENT_KIND)


def environment_validator() -> Draft202012Validator:
    return _validators()[ENVIRONMENT_KIND]


# ---------------------------------------------------------------------------- YAML


class _Problems(list[SpecProblem]):
    def add(self, file: str, line: int | None, path: Path_ | str, message: str) -> None:
        text = path if isinstance(path, str) else format_path(path)
        self.append(SpecProblem(file, line, text, message))


def format_path(path: Iterable[str | int]) -> str:
    """`("spec", "items", 0, "UserId")` -> `spec.items[0].UserId`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_FLOAT_TAG = "tag:yaml.org,2002:float"
_STR_TAG = "tag:yaml.org,2002:str"
_SET_TAG = "tag:yaml.org,2002:set"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
# YAML 1.1 (PyYAML) reads `1e3` as text: a number without a dot is a number all the same.
EXPONENT_NUMBER = re.compile(r"[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+")


def _scalar(node: yaml.ScalarNode, constructor: yaml.constructor.SafeConstructor) -> Any:
    """A YAML scalar as a plain value; floats become exact Decimals, dates stay text, `1e3` is a
    number. Non-finite floats (.nan, .inf) come back as floats for the caller to refuse."""
    if node.tag == _TIMESTAMP_TAG:
        return node.value
    if node.tag == _STR_TAG and not node.style and EXPONENT_NUMBER.fullmatch(node.value):
        return Decimal(node.value.replace("_", ""))
    value = constructor.construct_object(node, deep=True)
    if node.tag == _FLOAT_TAG and isinstance(value, float) and math.isfinite(value):
        try:
            return Decimal(node.value.replace("_", ""))
        except InvalidOperation:
            return Decimal(repr(value))
    if isinstance(value, _dt.date | _dt.datetime):
        return node.value
    return value


@dataclass
class _Reader:
    """Turns one document's YAML nodes into plain values, counting them (aliases included)."""

    file: str
    problems: _Problems
    constructor: yaml.constructor.SafeConstructor = field(default_factory=yaml.constructor.SafeConstructor)
    values: int = 0

    def value(self, node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise _TooBig(node.start_mark.line + 1)
        return _to_python(node, path, lines, self)


def _to_python(node: yaml.Node, path: Path_, lines: dict[Path_, int], reader: _Reader) -> Any:
    problems, file, constructor = reader.problems, reader.file, reader.constructor
    lines.setdefault(path, node.start_mark.line + 1)
    if len(path) > _MAX_DEPTH:
        raise _TooDeep(node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode) and node.tag == _SET_TAG:  # !!set {a, b}: a DynamoDB set
        members = [reader.value(k, (*path, i), lines) for i, (k, _) in enumerate(node.value)]
        try:
            return set(members)
        except TypeError:
            problems.add(file, node.start_mark.line + 1, path, "a set holds plain values (strings, numbers, binary)")
            return members
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                problems.add(file, key_node.start_mark.line + 1, path, "a key must be a plain value")
                continue
            key = str(_scalar(key_node, constructor))
            if key in out:
                problems.add(file, key_node.start_mark.line + 1, (*path, key), "duplicate key")
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = reader.value(value_node, (*path, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [reader.value(item, (*path, i), lines) for i, item in enumerate(node.value)]
    value = _scalar(node, constructor)  # type: ignore[arg-type]
    if isinstance(value, float):  # only .nan / .inf are left as floats
        problems.add(file, node.start_mark.line + 1, path, f"{node.value} is not a number a spec can hold "
                                                           "(DynamoDB and AWS take finite numbers only)")
    return value


class _TooDeep(Exception):
    def __init__(self, line: int):
        self.line = line


class _TooBig(Exception):
    def __init__(self, line: int):
        self.line = line


def _read_documents(
    file: Path, display: str, problems: _Problems, text: str | None = None
) -> list[tuple[dict[str, Any], dict[Path_, int], int]]:
    """Parse one file (or `text` given for it) into (document, line map, first line) triples,
    recording problems."""
    text = _read_text(file, display, problems) if text is None else text
    if text is None:
        return []
    if len(text) > MAX_FILE_BYTES:  # characters: at most as many as bytes
        problems.add(display, None, "", _too_large(len(text.encode("utf-8"))))
        return []
    docs = []
    try:
        for node in _compose_all(text):
            if node is None:
                continue
            lines: dict[Path_, int] = {}
            first = node.start_mark.line + 1
            # a reader (and constructor) per document: PyYAML's constructor caches every object it builds
            value = _Reader(display, problems).value(node, (), lines)
            if value is None:
                continue
            if not isinstance(value, dict):
                problems.add(display, first, "", "a spec document must be a mapping")
                continue
            docs.append((value, lines, first))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problems.add(display, line, "", f"invalid YAML: {exc.problem or exc.context}")
    except yaml.YAMLError as exc:
        problems.add(display, None, "", f"invalid YAML: {exc}")
    except _TooDeep as exc:
        problems.add(display, exc.line, "", f"nesting deeper than {_MAX_DEPTH} levels")
    except _TooBig as exc:
        problems.add(display, exc.line, "", f"the document expands to more than {MAX_VALUES:,} values (YAML aliases "
                                            "repeating other nodes?); a spec needs far fewer, so it is refused")
    except RecursionError:
        problems.add(display, None, "", "nesting too deep (recursive alias?)")
    return docs


def _too_large(size: int) -> str:
    return (f"the file is {size / 2**20:.1f} MiB; a spec file may be at most {MAX_FILE_BYTES // 2**20} MiB (a stack's "
            "specs are a few KiB): it is not read")


def _read_text(file: Path, display: str, problems: _Problems) -> str | None:
    """The file's text: refused unread when over MAX_FILE_BYTES, and not UTF-8 said at the line and column."""
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            problems.add(display, None, "", _too_large(size))
            return None
        data = file.read_bytes()
    except OSError as exc:
        problems.add(display, None, "", f"cannot read file: {exc.strerror or exc}")
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        problems.add(display, line, "", f"not UTF-8 text: byte 0x{data[exc.start]:02x} at column {column} "
                                        "(spec files are UTF-8)")
        return None


# libyaml's parser, where PyYAML was built with it: a spec set of a thousand documents loads several
# times faster, with the same nodes and line marks. A text it rejects is parsed again by PyYAML's own
# parser, whose messages are the ones reported (libyaml words them differently).
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", None)


def _compose_all(text: str) -> Iterable[yaml.Node | None]:
    if _FAST_LOADER is not None:
        try:
            return list(yaml.compose_all(text, Loader=_FAST_LOADER))
        except (yaml.YAMLError, RecursionError):
            pass
    return yaml.compose_all(text, Loader=yaml.SafeLoader)


# ---------------------------------------------------------------------------- schema errors


def _describe_type(expected: str | list[str]) -> str:
    names = {"string": "a string", "integer": "an integer", "number": "a number",
             "boolean": "true or false", "object": "a mapping", "array": "a list",
             "null": "null"}
    kinds = expected if isinstance(expected, list) else [expected]
    return " or ".join(names.get(k, k) for k in kinds)


def _schema_problems(error: ValidationError) -> list[tuple[Path_, str]]:
    """Turn one jsonschema error into (path, message) pairs a person can act on."""
    path: Path_ = tuple(error.absolute_path)
    custom = error.schema.get("x-message") if isinstance(error.schema, dict) else None
    if custom:
        return [(path, custom)]
    v, inst = error.validator, error.instance
    if v in ("oneOf", "anyOf") and error.context:
        return _schema_problems(best_match(error.context))
    if v == "additionalProperties" and isinstance(inst, dict):
        props = error.schema.get("properties", {})
        allowed = ", ".join(sorted(props))
        extra = [k for k in inst if k not in props]
        hint = f" (expected one of: {allowed})" if allowed else ""
        return [((*path, k), f"unknown field{hint}") for k in extra]
    if v == "required" and isinstance(inst, dict):
        return [(path, f"missing required field {r!r}") for r in error.validator_value
                if r not in inst]
    if v == "enum":
        return [(path, f"{inst!r} is not one of {', '.join(map(str, error.validator_value))}")]
    if v == "const":
        return [(path, f"{inst!r} must be {error.validator_value!r}")]
    if v == "type":
        return [(path, f"expected {_describe_type(error.validator_value)}, got {inst!r}")]
    if v == "pattern":
        return [(path, f"{inst!r} does not match the pattern {error.validator_value}")]
    return [(path, error.message)]


# ---------------------------------------------------------------------------- loading


def _display(file: Path, base: Path | None = None) -> str:
    """How messages name a file: relative to `base` (a repository root) or to the cwd."""
    if base is not None and file.resolve().is_relative_to(base.resolve()):
        return str(file.resolve().relative_to(base.resolve()))
    try:
        return os.path.relpath(file)
    except ValueError:
        return str(file)


def spec_files(root: Path) -> list[Path]:
    """The YAML files of a spec set: the file itself, or every *.yaml/*.yml below a directory (walk_specs)."""
    return walk_specs(root)[0]


def walk_specs(root: Path) -> tuple[list[Path], list[SpecProblem]]:
    """The YAML files below `root` (hidden files and directories left out), and what is wrong in the directory: a
    symbolic link that dangles or loops is an error, never a silent skip (the spec it stood for would be missing).
    A link to a file or a directory is followed; a directory is walked once."""
    if root.is_file():
        return [root], []
    files: list[Path] = []
    problems = _Problems()

    def walk(folder: Path, shown: Path, ancestors: frozenset[Path]) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            problems.add(str(shown), None, "", f"cannot list the directory: {exc.strerror or exc}")
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path, display = Path(entry.path), shown / entry.name
            if entry.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError) as exc:
                    loop = isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP
                    problems.add(str(display), None, "", "a symbolic link loop" if loop else
                                 f"a dangling symbolic link (to {os.readlink(path)}): the spec it names is missing")
                    continue
            else:
                target = path
            if target.is_dir():
                if target.resolve() in ancestors:
                    problems.add(str(display), None, "", "a symbolic link loop (it leads back to a directory above it)")
                    continue
                walk(target, display, ancestors | {target.resolve()})
            elif target.suffix in (".yaml", ".yml") or path.suffix in (".yaml", ".yml"):
                files.append(path)

    walk(root, root, frozenset({root.resolve()}))
    return sorted(files), list(problems)


Transform = Callable[[dict[str, Any], dict[Path_, int], str],
                     tuple[dict[str, Any], dict[Path_, Origin], list[SpecProblem]]]


def read_specs(root: str | Path, relative_to: Path | None = None, overrides: Mapping[Path, str] | None = None,
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
    problems = _Problems()
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
        display = _display(file, relative_to)
        for doc, lines, first in _read_documents(file, display, problems, overrides.get(file.resolve())):
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
    return specs, [_display(f, relative_to) for f in files], list(problems)


def duplicate_problems(specs: list[Spec]) -> list[SpecProblem]:
    """A second spec of the same kind and name (in one directory or across an environment's bases); the
    duplicates are removed from `specs`."""
    seen: dict[tuple[str, str], Spec] = {}
    problems = _Problems()
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
    doc: dict[str, Any], lines: dict[Path_, int], first: int, file: str, problems: _Problems,
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
    validators = _validators()
    if kind == ENVIRONMENT_KIND:
        problems.add(file, line(("kind",)), "kind", "an Environment is not a resource: give its directory to the "
                                                     f"command ({Path(file).parent}/), not a directory above it")
        return None
    if not isinstance(kind, str) or kind not in validators:
        problems.add(file, line(("kind",)), "kind",
                     f"unknown kind {kind!r}; known kinds: {', '.join(known_kinds())}")
        return None
    errors = list(validators[kind].iter_errors(doc))
    spec = Spec(kind=kind, metadata=Metadata.from_dict(doc["metadata"]) if not errors else Metadata(name="?"),
                spec=doc.get("spec") or {}, file=file, line=first, lines=lines, origins=dict(origins or {}))
    for error in errors:
        for path, message in _schema_problems(error):
            problems.add(file, line(path), path, message + stated_elsewhere(spec, path))
    return None if errors else spec


def stated_elsewhere(spec: Spec, path: Path_) -> str:
    """` (set by the patch at envs/prod/environment.yaml:9)` when an environment states the value at `path`."""
    found = spec.origin_of(tuple(path))
    return f" (set by {found[0].where()})" if found else ""
