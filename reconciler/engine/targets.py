"""What `plan ROOT` plans, and planning one of them: ROOT itself or each environment under it (with
--changed-since, only those whose files changed since a revision), each loaded, connected to its account and
planned with the budget of deletes and the change windows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reconciler.aws.client import Aws
from reconciler.core.errors import SpecError
from reconciler.engine.changes import Plan
from reconciler.engine.load import load_specs
from reconciler.engine.plan import planned
from reconciler.spec.documents import SpecSet
from reconciler.spec.environments import changed_files, environment_roots, inputs_of, touched


@dataclass
class Planned:
    """One target's spec set, the AWS it was planned against, and its plan."""

    spec_set: SpecSet
    aws: Aws
    plan: Plan


def plan_targets(root: Path, changed_since: str | None) -> list[Path]:
    """ROOT itself, or each environment under it; with `changed_since`, only those whose files (document, bases,
    own specs, published content) changed since that revision (one that does not load is planned: its errors
    are news)."""
    roots = environment_roots(root)
    if changed_since is None:
        return roots
    changed = changed_files(changed_since, root)
    return [target for target in roots if _touched(target, changed)]


def _touched(target: Path, changed: set[Path]) -> bool:
    try:
        spec_set = load_specs(target)
    except SpecError:
        return True
    content = [s.source_dir / s.spec["content"]["directory"] for s in spec_set.by_kind("Bucket")
               if isinstance(s.spec.get("content"), dict) and s.spec["content"].get("directory")]
    inputs = (inputs_of(spec_set.environment, content) if spec_set.environment
              else [target.resolve(), *(d.resolve() for d in content)])
    return touched(inputs, changed)


def plan_target(target: Path, connect: Callable[..., Aws], *, workers: int, max_destroy: int,
                manual: bool = False, role_arn: str | None = None) -> Planned:
    """Load `target` (a broken spec set stops here, before any AWS call), reach its environment's account
    (`connect(environment=..., role_arn=...)`) and plan it."""
    spec_set = load_specs(target)
    aws = connect(environment=spec_set.environment, role_arn=role_arn)
    return Planned(spec_set, aws, planned(spec_set, aws, workers=workers, max_destroy=max_destroy, manual=manual))
