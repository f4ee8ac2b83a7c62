"""What the cache's helper modules need of a CacheCluster (they are given the kind; typed by this, they import
nothing of kind.py, which imports them)."""

from __future__ import annotations

from typing import Any, Protocol

from reconciler.kinds.interfaces import OfSpec


class Cluster(OfSpec, Protocol):
    wanted: dict[str, Any]  # the desired state, resolved by prepare() (the network, the token's fingerprint)

    @property
    def ref(self) -> str: ...

    @property
    def security_group(self) -> str: ...

    def desired(self) -> dict[str, Any]: ...
