"""One small spec builder for tests where the YAML itself is not what is tested: `table("Orders")` is the
document a test would otherwise type out. Documents come out as a person writes them (flow style per field),
four lines for a bare table, so line numbers in messages stay predictable."""

from __future__ import annotations

from typing import Any

import yaml

KEY = {"name": "Id", "type": "S"}


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip()


def document(kind: str, name: str, spec: dict[str, Any] | None = None, **metadata: Any) -> str:
    """One spec document: `metadata: {name: ..., <metadata>}` and its spec on one line."""
    meta = {"name": name, **metadata}
    lines = ["apiVersion: reconciler/v1", f"kind: {kind}", f"metadata: {_flow(meta)}"]
    if spec is not None:
        lines.append(f"spec: {_flow(spec)}")
    return "\n".join(lines) + "\n"


def table(name: str = "Orders", **spec: Any) -> str:
    """A Table keyed by `Id` (a string) unless `partitionKey` says otherwise."""
    return document("Table", name, {"partitionKey": dict(KEY), **spec})


def cache(name: str = "app-cache", **spec: Any) -> str:
    """A CacheCluster reachable from the bastion's security group, its AUTH token from REDIS_AUTH_TOKEN."""
    return document("CacheCluster", name, {"allowFrom": [{"securityGroupName": "bastion"}],
                                           "authToken": {"fromEnv": "REDIS_AUTH_TOKEN"}, **spec})


def documents(*texts: str) -> str:
    """Several documents in one file."""
    return "---\n".join(texts)
