"""A spec set's problems, collected rather than raised one at a time: each with its file, line and field path."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.core.errors import SpecProblem

Path_ = tuple[str | int, ...]  # a field's path in a document: ("spec", "items", 0, "UserId")


class Problems(list[SpecProblem]):
    def add(self, file: str, line: int | None, path: Path_ | str, message: str) -> None:
        text = path if isinstance(path, str) else format_path(path)
        self.append(SpecProblem(file, line, text, message))


def format_path(path: Iterable[str | int]) -> str:
    """`("spec", "items", 0, "UserId")` -> `spec.items[0].UserId`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
