"""Which files are a spec set: every .yaml/.yml under the root, links followed only where they do not loop or
dangle, each named as a person would (relative to the repository)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from reconciler.core.errors import SpecProblem
from reconciler.spec.problems import Problems


def display_name(file: Path, base: Path | None = None) -> str:
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
    problems = Problems()

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
