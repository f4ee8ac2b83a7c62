"""Write drift back into the spec files: when the console was right, the spec says so.

For each drifted field of a resource, the spec file is edited (spec/yamledit.py, imported only once something is
written back) so that it states the live value, and nothing else in the file changes. Each edit is checked before
it is kept: the edited spec set must load and the resource's diff against what is live must no longer list that
field, nor any field it did not list before; an edit that fails is undone and reported, never guessed at.
Never written: secrets, fields the spec does not state, fields in `metadata.ignore` unless the spec says
`metadata.writeBack: true`, drift of a resource AWS is still changing, replacing fields unless asked."""

from __future__ import annotations

import difflib
import importlib
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.core.diff import MISSING, Field, mark_ignored, normalise
from reconciler.core.errors import SpecError
from reconciler.core.types import OWNERSHIP_TAGS, FieldChange
from reconciler.kinds import registry
from reconciler.spec.documents import Spec
from reconciler.spec.schemas import ENVIRONMENT_KIND

if TYPE_CHECKING:
    from reconciler.aws.client import Aws
    from reconciler.engine.changes import Change, Plan
    from reconciler.engine.load import SpecSet
    from reconciler.kinds import Resource

WRITABLE_ACTIONS = ("update", "replace", "adopt")


def _yaml(name: str) -> Any:
    return getattr(importlib.import_module("reconciler.spec.yamledit"), name)


@dataclass
class WrittenField:
    """One drifted field and what write-back did with it."""

    ref: str
    path: str
    spec_value: Any          # what the spec said (the plan's `after`)
    live_value: Any          # what AWS has (the plan's `before`): what the spec says once written
    written: bool
    reason: str | None = None  # why it was not written
    file: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"resource": self.ref, "path": self.path, "written": self.written}
        if self.written:
            out |= {"before": self.spec_value, "after": self.live_value, "file": self.file}
        else:
            out["reason"] = self.reason
        return out


@dataclass
class WriteBack:
    """The edited files (old and new text) and an entry per drifted field."""

    entries: list[WrittenField] = field(default_factory=list)
    files: dict[Path, tuple[str, str, str]] = field(default_factory=dict)  # path -> (display, old, new)

    @property
    def written(self) -> list[WrittenField]:
        return [e for e in self.entries if e.written]

    @property
    def skipped(self) -> list[WrittenField]:
        return [e for e in self.entries if not e.written]

    def changed_files(self) -> dict[Path, str]:
        """path -> new text, for the files whose text changed."""
        return {p: new for p, (_, old, new) in self.files.items() if new != old}

    def diff(self) -> str:
        """The unified diff of every changed file (`a/` and `b/` the file's name, as git shows it)."""
        out = []
        for display, old, new in self.files.values():
            out += difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        f"a/{display}", f"b/{display}")
        return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in out)

    def save(self) -> None:
        """Write the changed files (each replaced whole, atomically: a crash leaves old or new)."""
        for path, text in self.changed_files().items():
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                out.write(text)
            os.chmod(tmp, path.stat().st_mode & 0o777)
            os.replace(tmp, path)


FieldFilter = Callable[["Change", FieldChange], str | None]


def every_field(change: Change, fc: FieldChange) -> str | None:
    """`reconciler writeback`: any drifted field (ignored ones where the spec opts in)."""
    if fc.ignored and not change.resource.spec.metadata.write_back:
        return "in metadata.ignore (set metadata.writeBack: true to write its drift back)"
    return None


def uncorrected_fields(change: Change, fc: FieldChange) -> str | None:
    """The agent's write-back branch: drift it does not correct itself: of `observe` or paused resources,
    and of ignored fields where the spec opts in."""
    if fc.ignored:
        return every_field(change, fc)
    if change.policy == "observe" or change.paused:
        return None
    return "corrected by the agent (policy enforce)"


def write_back(plan: Plan, specs: SpecSet, root: Path, aws: Aws, *, relative_to: Path | None = None,
               allow_replacement: bool = False, fields: FieldFilter = every_field,
               only: Callable[[Change], bool] = lambda change: True) -> WriteBack:
    """Edit the spec files under `root` so that they state the live values of the plan's drift."""
    result = WriteBack()
    for change in plan.changes:
        if not only(change) or change.action not in WRITABLE_ACTIONS or change.live is None:
            continue
        _write_change(change, specs, root, aws, relative_to, allow_replacement, fields, result)
    return result


def _write_change(change: Change, specs: SpecSet, root: Path, aws: Aws, relative_to: Path | None,
                  allow_replacement: bool, fields: FieldFilter, result: WriteBack) -> None:
    state = _Editing(change, specs, root, aws, relative_to, result)
    for fc in change.fields:
        if fc.path.startswith("spec.tags.") and fc.path[len("spec.tags."):] in OWNERSHIP_TAGS:
            continue  # the agent's own tags: never in a spec
        reason = _why_not(change, fc, allow_replacement) or fields(change, fc)
        where = None
        if reason is None:
            reason, where = state.write(fc)
        result.entries.append(WrittenField(change.ref, fc.path, fc.after, fc.before, reason is None, reason, where))


def _why_not(change: Change, fc: FieldChange, allow_replacement: bool) -> str | None:
    if fc.sensitive:
        return "a secret: never written to a spec"
    if change.live is not None and change.live.pending:
        return f"AWS is still changing it ({change.live.pending}); written back once it has settled"
    if fc.forces_replacement and not allow_replacement:
        return "the spec's value forces replacement; pass --allow-replacement to write the live value back"
    return None


@dataclass
class _Editing:
    """One resource's spec being edited field by field, each edit checked before it is kept."""

    change: Change
    specs: SpecSet
    root: Path
    aws: Aws
    relative_to: Path | None
    result: WriteBack

    def write(self, fc: FieldChange) -> tuple[str | None, str | None]:
        """Write one field's live value: (None, where it was written) when written, else (why not, None); the
        files are then unchanged.

        A value other fields inherit (an index's capacity is the table's unless it states its own) would
        make them differ: their live values are then written along with it, so that they keep them."""
        resource = self.change.resource
        spec = self._current_spec()
        if spec is None:
            return "its document was not found in the file", None
        before_paths = {c.path for c in self._diff(spec)}
        texts = _Texts(self.result, self.relative_to)
        try:
            self._edit(texts, fc, spec, primary=True)
            if not texts.changed():
                return "the spec cannot state this live value", None
            problem, disturbed = self._check(texts, fc.path, before_paths)
            if disturbed and not problem:
                for other in disturbed:  # the fields it disturbed keep their live values
                    self._edit(texts, other, self._load(texts).get(resource.kind, resource.name))
                problem, disturbed = self._check(texts, fc.path, before_paths)
        except (_yaml("YamlEditError"), _Unwritable) as exc:
            return (f"not written: {exc}" if isinstance(exc, _yaml("YamlEditError")) else str(exc)), None
        if disturbed and not problem:
            problem = f"writing it would make other fields differ ({', '.join(c.path for c in disturbed)})"
        if problem is None:
            texts.keep()
            return None, "; ".join(sorted(texts.where))
        return problem, None

    def _edit(self, texts: _Texts, fc: FieldChange, spec: Spec, primary: bool = False) -> None:
        found = _field_of(self.change.resource, fc)
        if found is None:
            raise _Unwritable("no spec field states it")
        if not primary and (fc.sensitive or fc.forces_replacement):
            raise _Unwritable(f"writing it would change {fc.path}, which is not written back here")
        _edit(texts.into(spec), found, fc, spec.spec, self.change.live.state)

    def _load(self, texts: _Texts | None = None) -> SpecSet:
        from reconciler.engine.load import load_specs

        overrides = texts.overrides() if texts is not None else {p: new for p, (_, _, new) in self.result.files.items()}
        return load_specs(self.root, self.relative_to, overrides=overrides)

    def _current_spec(self) -> Any:
        try:
            return self._load().get(self.change.kind, self.change.name)
        except SpecError:
            return None

    def _diff(self, spec: Any) -> list[FieldChange]:
        resource = registry.get(spec.kind)(spec, self.specs.specs)
        resource.prepare(self.aws)
        return mark_ignored(resource.diff(self.change.live), spec.metadata.ignore)

    def _check(self, texts: _Texts, path: str, before_paths: set[str]) -> tuple[str | None, list[FieldChange]]:
        """(why the edited text will not do, or None; the fields it newly makes differ)."""
        try:
            spec = self._load(texts).get(self.change.kind, self.change.name)
        except SpecError as exc:
            return f"the live value does not pass validation: {exc.problems[0].message}", []
        if spec is None:
            return "the edited document no longer loads", []
        after = self._diff(spec)
        if path in {c.path for c in after}:
            return "the spec cannot state this live value (writing it does not reproduce it)", []
        return None, [c for c in after if c.path not in before_paths]


@dataclass
class _Texts:
    """The spec files' texts while one field is written: edits go to the file that states each value (the spec's
    own document; for an environment, the value or patch that sets it), kept only if the edit passes its check."""

    result: WriteBack
    relative_to: Path | None
    texts: dict[Path, tuple[str, str]] = field(default_factory=dict)  # path -> (display, text)
    where: set[str] = field(default_factory=set)

    def text(self, path: Path, display: str) -> str:
        key = path.resolve()
        if key not in self.texts:
            known = next((v for p, v in self.result.files.items() if p.resolve() == key), None)
            self.texts[key] = (display, known[2] if known else path.read_text(encoding="utf-8"))
        return self.texts[key][1]

    def into(self, spec: Spec) -> _Target:
        return _Target(self, spec)

    def changed(self) -> bool:
        return any(text != self._saved(path) for path, (_, text) in self.texts.items())

    def _saved(self, path: Path) -> str:
        known = next((v for p, v in self.result.files.items() if p.resolve() == path), None)
        return known[2] if known else path.read_text(encoding="utf-8")

    def overrides(self) -> dict[Path, str]:
        out = {p: new for p, (_, _, new) in self.result.files.items()}
        out.update({path: text for path, (_, text) in self.texts.items()})
        return out

    def keep(self) -> None:
        for path, (display, text) in self.texts.items():
            known = next((p for p in self.result.files if p.resolve() == path), None)
            if known is None:
                old = path.read_text(encoding="utf-8")
                self.result.files[path] = (display, old, text)
            else:
                shown, old, _ = self.result.files[known]
                self.result.files[known] = (shown, old, text)


@dataclass
class _Target:
    """Edits of one spec's fields, each sent to the file and document that states it."""

    texts: _Texts
    spec: Spec

    def set_value(self, at: tuple[str | int, ...], value: Any) -> None:
        self._apply(at, lambda text, doc, path: _yaml("set_value")(text, doc, path, value))

    def delete(self, at: tuple[str | int, ...]) -> None:
        self._apply(at, lambda text, doc, path: _yaml("delete")(text, doc, path))

    def append(self, at: tuple[str | int, ...], value: Any) -> None:
        self._apply(at, lambda text, doc, path: _yaml("append")(text, doc, path, value))

    def _apply(self, at: tuple[str | int, ...], edit: Callable[[str, int, tuple[str | int, ...]], str]) -> None:
        file, display, doc_of, path, where = self._locate(at)
        text = self.texts.text(file, display)
        doc = doc_of(text)
        if doc is None:
            raise _Unwritable(f"its document was not found in {display}")
        new = edit(text, doc, path)
        if new != text:
            self.texts.texts[file.resolve()] = (display, new)
            self.texts.where.add(where)

    def _locate(self, at: tuple[str | int, ...]) -> tuple[Path, str, Callable[[str], int | None],
                                                           tuple[str | int, ...], str]:
        spec, relative_to = self.spec, self.texts.relative_to
        found = spec.origin_of(at)
        if found is None:
            name = spec.source_name or spec.name
            shared = " (the environments' shared base)" if spec.environment else ""
            return (spec.path(relative_to), spec.file, lambda text: _yaml("find_document")(text, spec.kind, name), at,
                    f"{spec.file}{shared}")
        origin, rest = found
        if origin.what == "template":
            raise _Unwritable(f"its value is made from ${{...}} placeholders ({origin.where()}); change it by hand")
        file = relative_to / origin.file if relative_to is not None else Path(origin.file)
        env = spec.environment
        said = (f"value {origin.path[-1]}" if origin.what == "value"
                else f"patch {int(origin.path[2]) + 1}")
        return (file, origin.file, lambda text: _yaml("find_document")(text, ENVIRONMENT_KIND, env or ""),
                (*origin.path, *rest), f"{origin.file}, {said}")


class _Unwritable(Exception):
    """A field write-back cannot write (said as the reason it was skipped)."""


def _field_of(resource: Resource, fc: FieldChange) -> Field | None:
    for f in resource.field_table():
        if fc.path == f.path or fc.path.startswith((f.path + ".", f.path + "[")):
            return f
    return None


def _edit(to: _Target, f: Field, fc: FieldChange, stated: dict[str, Any], live: dict[str, Any]) -> None:
    """Write the live value of one field change where the spec states it."""
    at: tuple[str | int, ...] = ("spec", f.name)
    if f.mode == "map":
        key = fc.path[len(f.path) + 1:]
        if fc.before is None:
            if key in (stated.get(f.name) or {}):
                to.delete((*at, key))
            return
        to.set_value((*at, key), fc.before)
        return
    if f.mode == "keyed" and fc.entry is not None:
        assert f.key is not None
        entries = stated.get(f.name) or []
        index = next((i for i, e in enumerate(entries) if f.key(e) == fc.entry), None)
        entry_path = f"{f.path}[{fc.entry}]"
        # the live entry as observed, not as compared: a set stays a set (the diff sees a sorted list)
        raw = next((e for e in live.get(f.name) or [] if f.key(e) == fc.entry), None)
        if index is None:  # live only: the console added it
            if fc.before is not None:
                to.append(at, raw if raw is not None else fc.before)
            return
        if fc.path != entry_path:  # one attribute of an entry (an item's)
            attribute = fc.path[len(entry_path) + 1:]
            if fc.before is None:
                to.delete((*at, index, attribute))
                return
            value = raw[attribute] if isinstance(raw, dict) and attribute in raw else fc.before
            to.set_value((*at, index, attribute), value)
            return
        if fc.before is None:  # the console removed it
            to.delete((*at, index))
            return
        _write_value(to, (*at, index), fc.after, fc.before, entries[index])
        return
    if fc.before is None:
        return  # "not there" is no value a spec states (leaving the field out means "not managed")
    _write_value(to, at, fc.after, fc.before, stated.get(f.name, MISSING))


def _write_value(to: _Target, at: tuple[str | int, ...], after: Any, before: Any, stated: Any) -> None:
    """Write `before` (live) where the spec states `stated` (which reads as `after`): mappings key by key,
    so that keys the spec leaves to their defaults stay left out and comments inside stay."""
    if normalise(after) == normalise(before):
        return
    if isinstance(after, dict) and isinstance(before, dict) and isinstance(stated, dict):
        for key in _keys(after, before):
            a, b = after.get(key), before.get(key)
            if normalise(a) == normalise(b):
                continue
            if b is None:
                if key in stated:
                    to.delete((*at, key))
            elif key in stated:
                _write_value(to, (*at, key), a, b, stated[key])
            else:
                to.set_value((*at, key), b)
        return
    to.set_value(at, before)


def _keys(*maps: dict[str, Any]) -> Iterable[str]:
    seen: dict[str, None] = {}
    for m in maps:
        seen.update(dict.fromkeys(m))
    return seen
