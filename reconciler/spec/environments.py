"""Environments: one spec set, several stacks (staging, production), each in its own account.

An environment is a directory holding `environment.yaml` (kind Environment): the base spec directories
it builds on, `values` for the `${name}` placeholders in them, JSON merge patches addressed by kind and
name, and the AWS account it must reach (DESIGN.md, "Environments"). Other spec files in its directory
belong to it alone. Placeholders follow Flux's post-build substitution: `${name}`, `${name:=default}`,
and `$${name}` for a literal `${name}`. A placeholder that is the whole value takes the value's own YAML
type (`read: ${readCapacity}` is a number); inside a longer text the value is written out.

Loading is reconciler.loading's; this module reads the Environment document and turns each base
document into the environment's (specs.read_specs' `transform`), recording where each value it put in
is stated, for error messages and for write-back.
"""

from __future__ import annotations

import copy
import re
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from reconciler.core.errors import ReconcilerError, SpecProblem
from reconciler.spec.documents import Origin
from reconciler.spec.fastschemas import refuses
from reconciler.spec.files import display_name as _display
from reconciler.spec.files import spec_files
from reconciler.spec.problems import Path_
from reconciler.spec.problems import Problems as _Problems
from reconciler.spec.reading import read_documents as _read_documents
from reconciler.spec.reading import scalar as _scalar
from reconciler.spec.schemas import ENVIRONMENT_KIND, environment_validator
from reconciler.spec.schemas import schema_problems as _schema_problems

if TYPE_CHECKING:
    from reconciler.aws.client import Aws

ENVIRONMENT_FILES = ("environment.yaml", "environment.yml")
PLACEHOLDER = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::=([^}]*))?\}")


@dataclass(frozen=True)
class AwsTarget:
    """The account an environment's agent must reach, and how."""

    region: str | None = None
    account_id: str | None = None
    role_arn: str | None = None
    external_id: str | None = None


@dataclass(frozen=True)
class Patch:
    """One JSON merge patch into a resource's `spec`, addressed by kind and (substituted) name."""

    index: int
    kind: str
    name: str
    patch: dict[str, Any]
    line: int


@dataclass(frozen=True)
class Environment:
    """A validated Environment document."""

    name: str
    path: Path                      # environment.yaml
    file: str                       # as messages name it
    bases: tuple[Path, ...]
    values: Mapping[str, Any]
    patches: tuple[Patch, ...]
    aws: AwsTarget
    lines: Mapping[Path_, int] = field(default_factory=dict, repr=False)

    @property
    def directory(self) -> Path:
        return self.path.parent

    def line_of(self, path: Path_) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "file": self.file, "region": self.aws.region, "accountId": self.aws.account_id,
                "roleArn": self.aws.role_arn}


def environment_file(root: Path) -> Path | None:
    """The Environment document `root` names (its directory, or the file itself), or None."""
    candidates = [root] if root.is_file() else [root / name for name in ENVIRONMENT_FILES]
    for candidate in candidates:
        if candidate.name in ENVIRONMENT_FILES and candidate.is_file() and _declares_environment(candidate):
            return candidate
    return None


def find_environments(root: Path) -> list[Path]:
    """The environment directories at or below `root` (hidden directories skipped), in path order."""
    if environment_file(root):
        return [root]
    if not root.is_dir():
        return []
    found = {p.parent for name in ENVIRONMENT_FILES for p in root.rglob(name)
             if not any(part.startswith(".") for part in p.relative_to(root).parts) and _declares_environment(p)}
    return sorted(found)


def environment_roots(root: Path) -> list[Path]:
    """What a command given ROOT works on: ROOT itself when it is an environment or holds none, else each
    environment under it."""
    return [root] if environment_file(root) else find_environments(root) or [root]


def _declares_environment(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return re.search(rf"^kind:\s*{ENVIRONMENT_KIND}\s*$", text, re.MULTILINE) is not None


def read_environment(path: Path, relative_to: Path | None = None, text: str | None = None
                     ) -> tuple[Environment | None, list[SpecProblem]]:
    """Read and validate one Environment document: (the environment, or None when it cannot be used, and the
    problems found; a patch whose name cannot be filled is left out and said)."""
    display = _display(path, relative_to)
    problems = _Problems()
    docs = [d for d in _read_documents(path, display, problems, text) if d[0].get("kind") == ENVIRONMENT_KIND]
    if problems:
        return None, list(problems)
    if len(docs) != 1:
        problems.add(display, 1, "kind", f"one Environment document per file (found {len(docs)})")
        return None, list(problems)
    doc, lines, first = docs[0]
    for error in (environment_validator().iter_errors(doc) if refuses(ENVIRONMENT_KIND, doc) else []):
        for where, message in _schema_problems(error):
            problems.add(display, _line(lines, where, first), where, message)
    if problems:
        return None, list(problems)
    spec = doc["spec"]
    bases = []
    for i, base in enumerate(spec["base"]):
        directory = (path.parent / base).resolve()
        line = _line(lines, ("spec", "base", i), first)
        if not directory.is_dir():
            problems.add(display, line, ("spec", "base", i), f"{base!r} is not a directory (relative to {display})")
        elif directory == path.parent.resolve():
            problems.add(display, line, ("spec", "base", i), "an environment cannot be its own base")
        elif environment_file(directory):
            problems.add(display, line, ("spec", "base", i), f"{base!r} is an environment itself; a base is a "
                                                             "directory of specs")
        else:
            bases.append(directory)
    aws = AwsTarget(**{k: (spec.get("aws") or {}).get(key) for k, key in
                       (("region", "region"), ("account_id", "accountId"), ("role_arn", "roleArn"),
                        ("external_id", "externalId"))})
    if aws.role_arn and aws.account_id and aws.role_arn.split(":")[4] != aws.account_id:
        problems.add(display, _line(lines, ("spec", "aws", "roleArn"), first), "spec.aws.roleArn",
                     f"the role is in account {aws.role_arn.split(':')[4]}, not in accountId {aws.account_id}")
    if problems:
        return None, list(problems)
    values = spec.get("values") or {}
    patches = []
    for i, raw in enumerate(spec.get("patches") or []):
        name, name_problem = substitute_text(raw["name"], values)
        if name_problem:  # said, and the bases are read all the same: their problems are news too
            problems.add(display, _line(lines, ("spec", "patches", i, "name"), first),
                         ("spec", "patches", i, "name"), name_problem)
            continue
        patches.append(Patch(i, raw["kind"], name, raw["patch"], _line(lines, ("spec", "patches", i), first)))
    return Environment(name=doc["metadata"]["name"], path=path, file=display, bases=tuple(bases), values=values,
                       patches=tuple(patches), aws=aws, lines=lines), list(problems)


def _line(lines: Mapping[Path_, int], path: Path_, default: int) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, default)


# ---------------------------------------------------------------------------- the account


def assume_environment(aws: Aws, environment: Environment) -> dict[str, str] | None:
    """Act as the environment's role (when it names one) and make sure the account reached is its accountId,
    before any other call: staging's agent can never touch production. Returns the identity (None when the
    environment names no account)."""
    target = environment.aws
    if target.role_arn:
        host = re.sub(r"[^\w+=,.@-]", "-", socket.gethostname())
        aws.assume_role(target.role_arn, f"reconciler-{environment.name}-{host}"[:64], target.external_id)
    if not target.account_id:
        return None
    identity = aws.identity()
    if identity["Account"] != target.account_id:
        raise ReconcilerError(
            f"{environment.file}: environment {environment.name!r} is account {target.account_id}, but the "
            f"credentials reach account {identity['Account']} ({identity['Arn']}); nothing was read or changed. "
            "Run it with that account's credentials" + (" (or ones that may assume its aws.roleArn)"
                                                        if target.role_arn else " (or set aws.roleArn)"))
    return identity


# ---------------------------------------------------------------------------- values


def written_out(value: Any) -> str | None:
    """A value as it reads inside a longer text (`true`, `20`, `prod`); None for a mapping or a list."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | Decimal | float):
        return str(value)
    return None


def yaml_value(text: str) -> Any:
    """A placeholder's default, read as YAML reads a value (`5` is a number)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return text
    if not isinstance(node, yaml.ScalarNode):
        return text
    return _scalar(node, yaml.constructor.SafeConstructor())


def substitute_text(text: str, values: Mapping[str, Any], used: set[str] | None = None
                    ) -> tuple[Any, str | None]:
    """`text` with its placeholders filled: (the value, or None and why not). A text that is one placeholder
    becomes the value itself, typed."""
    whole = PLACEHOLDER.fullmatch(text)
    if whole and not whole.group(1):
        name, default = whole.group(2), whole.group(3)
        if name in values:
            if used is not None:
                used.add(name)
            return copy.deepcopy(values[name]), None
        if default is not None:
            return yaml_value(default), None
        return None, _unknown(name, values)
    problem: list[str] = []

    def fill(match: re.Match[str]) -> str:
        escaped, name, default = match.groups()
        if escaped:
            return match.group(0)[1:]
        if name in values:
            if used is not None:
                used.add(name)
            out = written_out(values[name])
            if out is None:
                problem.append(f"${{{name}}} is a mapping or a list; it can only stand alone as a value")
                return ""
            return out
        if default is not None:
            return default
        problem.append(_unknown(name, values))
        return ""

    result = PLACEHOLDER.sub(fill, text)
    return (None, problem[0]) if problem else (result, None)


def _unknown(name: str, values: Mapping[str, Any]) -> str:
    declared = ", ".join(sorted(values)) or "none"
    return (f"${{{name}}} has no value: declare it in the environment's values (declared: {declared}) or give a "
            f"default (${{{name}:=...}})")


@dataclass
class Substitution:
    """Turns a base document into an environment's (specs.read_specs' `transform`): placeholders filled,
    patches merged, and each value that came from the environment recorded with where it is stated.
    Without an environment, only defaults fill placeholders."""

    environment: Environment | None = None
    used: set[str] = field(default_factory=set)
    patched: set[int] = field(default_factory=set)

    @property
    def values(self) -> Mapping[str, Any]:
        return self.environment.values if self.environment else {}

    def __call__(self, doc: dict[str, Any], lines: dict[Path_, int], file: str
                 ) -> tuple[dict[str, Any], dict[Path_, Origin], list[SpecProblem]]:
        origins: dict[Path_, Origin] = {}
        problems = _Problems()
        doc = self._fill(doc, (), lines, file, origins, problems)
        if self.environment and isinstance(doc.get("metadata"), dict) and isinstance(doc.get("spec"), dict):
            name = doc["metadata"].get("name")
            for patch in self.environment.patches:
                if patch.kind == doc.get("kind") and patch.name == name:
                    self.patched.add(patch.index)
                    base = ("spec", "patches", patch.index, "patch")
                    doc["spec"] = merge_patch(doc["spec"], patch.patch, ("spec",), base, origins, self.environment)
        return doc, origins, list(problems)

    def _fill(self, value: Any, path: Path_, lines: dict[Path_, int], file: str,
              origins: dict[Path_, Origin], problems: _Problems) -> Any:
        if isinstance(value, dict):
            return {k: self._fill(v, (*path, k), lines, file, origins, problems) for k, v in value.items()}
        if isinstance(value, list):
            return [self._fill(v, (*path, i), lines, file, origins, problems) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        filled, problem = substitute_text(value, self.values, self.used)
        line = _line(lines, path, 1)
        if problem:
            problems.add(file, line, path, problem)
            return value
        whole = PLACEHOLDER.fullmatch(value)
        if whole and not whole.group(1) and whole.group(2) in self.values and self.environment:
            env = self.environment
            at = ("spec", "values", whole.group(2))
            origins[path] = Origin("value", env.file, env.line_of(at), at)
        elif PLACEHOLDER.search(value):
            origins[path] = Origin("template", file, line)
        return filled

    def leftover_problems(self) -> list[SpecProblem]:
        """Values nothing uses and patches that address no resource: both are mistakes (a typo)."""
        env = self.environment
        if env is None:
            return []
        out = _Problems()
        for name in env.values:
            if name not in self.used:
                out.add(env.file, env.line_of(("spec", "values", name)), ("spec", "values", name),
                        f"the value {name!r} is used by no ${{{name}}} placeholder in the bases")
        for patch in env.patches:
            if patch.index not in self.patched:
                out.add(env.file, patch.line, ("spec", "patches", patch.index),
                        f"no {patch.kind} named {patch.name!r} in the bases "
                        f"({', '.join(_display(b) for b in env.bases)}) to patch")
        return list(out)


def merge_patch(target: Any, patch: Any, path: Path_, at: Path_, origins: dict[Path_, Origin],
                env: Environment) -> Any:
    """RFC 7386 JSON merge patch of `patch` into `target` (null removes a key; anything but a mapping replaces),
    recording each value it sets as stated by the patch at `at` in the environment's file."""
    if not isinstance(patch, dict):
        origins[path] = Origin("patch", env.file, env.line_of(at), at)
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
            continue
        out[key] = merge_patch(out.get(key), value, (*path, key), (*at, key), origins, env)
    return out


def files_of(environment: Environment) -> list[Path]:
    """Every file an environment is built from: its document, its bases' spec files and its own."""
    out = [environment.path]
    for directory in (*environment.bases, environment.directory):
        out += [f for f in spec_files(directory) if f.resolve() != environment.path.resolve()]
    return out


# ---------------------------------------------------------------------------- what changed


def changed_files(rev: str, where: Path) -> set[Path]:
    """The files that differ from git revision `rev` in the repository holding `where`: committed since, changed
    in the work tree, or new and untracked (a pull request's checkout has them committed)."""
    def git(*args: str, cwd: Path) -> str:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            said = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
            raise ReconcilerError(f"--changed-since {rev}: git {args[0]} failed: {said[0]}")
        return proc.stdout

    start = where if where.is_dir() else where.parent
    top = Path(git("rev-parse", "--show-toplevel", cwd=start).strip())
    git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", cwd=top)
    names = git("diff", "--name-only", "--no-renames", rev, "--", cwd=top).splitlines()
    names += git("ls-files", "--others", "--exclude-standard", cwd=top).splitlines()
    return {(top / name).resolve() for name in names if name}


def inputs_of(environment: Environment, content_dirs: list[Path]) -> list[Path]:
    """What an environment's plan reads from the repository: its document, its bases, its own directory and
    the directories its buckets publish."""
    return [environment.path.resolve(), *environment.bases, environment.directory.resolve(),
            *(d.resolve() for d in content_dirs)]


def touched(inputs: list[Path], changed: set[Path]) -> bool:
    """Whether a changed file is one of `inputs` or lies below one (a file deleted from a base counts)."""
    return any(path == i or path.is_relative_to(i) for path in changed for i in inputs)
