"""The registry of kinds: one module per AWS service, each registering its classes."""

from __future__ import annotations

from reconciler.kinds.base import Resource

_KINDS: dict[str, type[Resource]] = {}


def register(cls: type[Resource]) -> type[Resource]:
    """Class decorator: make a kind known to the engine."""
    _KINDS[cls.kind] = cls
    return cls


class _Registry:
    def get(self, kind: str) -> type[Resource]:
        _load_all()
        return _KINDS[kind]

    def kinds(self) -> list[str]:
        _load_all()
        return sorted(_KINDS, key=lambda k: (_KINDS[k].order, k))

    def classes(self) -> list[type[Resource]]:
        return [_KINDS[k] for k in self.kinds()]


_loaded: list[bool] = []


def _load_all() -> None:
    """Import every kind's module (each registers itself; a module imported on its own registers only its
    kinds, so a kind already registered does not mean they all are)."""
    if _loaded:
        return
    from reconciler.kinds.bucket import kind as _bucket  # noqa: F401
    from reconciler.kinds.cache import kind as _cache  # noqa: F401
    from reconciler.kinds.distribution import kind as _distribution  # noqa: F401
    from reconciler.kinds.table import kind as _table  # noqa: F401

    _loaded.append(True)


registry = _Registry()

__all__ = ["Resource", "register", "registry"]
