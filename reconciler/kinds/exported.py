"""What `reconciler export` gets from each kind: a live resource as the spec a person would write, with
what could not be expressed. Shared by the kinds (which make them) and the engine (which writes them)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from reconciler.core.types import ENV_TAG, OWNER_TAG, OWNER_VALUE, owned_by


@dataclass
class Exported:
    """One live resource as a spec, with what could not be expressed."""

    kind: str
    name: str
    spec: dict[str, Any]
    tags: dict[str, str]
    external_id: str | None = None
    warnings: list[str] = field(default_factory=list)
    comments: dict[str, str] = field(default_factory=dict)  # a line's text -> a comment placed above it
    exceptions: list[str] = field(default_factory=list)     # metadata.securityExceptions it needs
    requires: list[tuple[str, str]] = field(default_factory=list)  # (kind, name) it refers to
    skipped: bool = False  # cannot be expressed as a spec: only its warnings are reported
    environment: str | None = None  # the environment being exported (envs/prod: `prod`)

    @property
    def owned(self) -> bool:
        return owned_by(self.tags, self.environment)

    @property
    def owned_elsewhere(self) -> str | None:
        """The environment (or "no environment") whose agent owns it, when that is not the one exported."""
        if self.tags.get(OWNER_TAG) != OWNER_VALUE or self.owned:
            return None
        theirs = self.tags.get(ENV_TAG)
        return f"environment {theirs!r}" if theirs else "no environment (a plain spec directory)"

    def document(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.name}
        if not self.owned:
            metadata["adopt"] = True
        metadata["deletion"] = "retain"
        if self.external_id:
            metadata["externalId"] = self.external_id
        if self.exceptions:
            metadata["securityExceptions"] = sorted(self.exceptions)
        return {"apiVersion": "reconciler/v1", "kind": self.kind, "metadata": metadata, "spec": self.spec}


def user_tags(tags: dict[str, str]) -> dict[str, str]:
    """Tags a spec states: without the agent's own (ownership, bookkeeping) and AWS's."""
    return {k: v for k, v in tags.items() if k != OWNER_TAG and not k.startswith(("reconciler:", "aws:"))}


def spec_name(text: str, fallback: str) -> str:
    """A spec name made from free text (a distribution's comment): lower-case, dashes."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64]
    return name or fallback
