"""What the table's helper modules need of a Table (they are given the kind; typed by this, they import nothing
of kind.py, which imports them)."""

from __future__ import annotations

from typing import Any, Protocol

from reconciler.kinds.interfaces import OfSpec


class TableLike(OfSpec, Protocol):
    def desired(self) -> dict[str, Any]: ...

    def item_key(self, item: dict[str, Any]) -> str: ...
