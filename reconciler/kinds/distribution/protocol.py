"""What the distribution's helper modules need of a Distribution (they are given the kind; typed by this, they
import nothing of kind.py, which imports them)."""

from __future__ import annotations

from typing import Any, Protocol

from reconciler.kinds.interfaces import OfSpec


class DistributionLike(OfSpec, Protocol):
    kind: str

    @property
    def bucket(self) -> str: ...

    @property
    def oac(self) -> str: ...

    def desired(self, arn: str | None = None) -> dict[str, Any]: ...
