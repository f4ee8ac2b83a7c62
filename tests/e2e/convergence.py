"""Drive the agent (`reconciler run --once`, as a user runs it) cycle after cycle until a spec set has
converged on a sandbox that keeps AWS's time; shared by the end-to-end test and bench/convergence.py."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

APPLY_EVENTS = ("apply.create", "apply.update", "apply.adopt", "apply.replace", "apply.delete", "apply.step",
                "apply.failed")


@dataclass
class Cycle:
    duration_s: float
    applied: list[str]
    pending: list[str]
    ok: bool


@dataclass
class Convergence:
    cycles: list[Cycle] = field(default_factory=list)
    seconds: float = 0.0
    converged: bool = False

    @property
    def longest_cycle_s(self) -> float:
        return max((c.duration_s for c in self.cycles), default=0.0)


def one_cycle(command: list[str], specs: Path, env: dict[str, str], cwd: Path) -> Cycle:
    proc = subprocess.run([*command, "run", "--once", "--no-lease", str(specs)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    done = next((e for e in events if e.get("event") == "cycle.done"), None)
    if done is None:
        raise AssertionError(f"no cycle.done (exit {proc.returncode}): {proc.stderr[-3000:]}")
    applied = [f"{e['event']} {e.get('kind')}/{e.get('name')}" for e in events
               if e.get("event", "").startswith(APPLY_EVENTS)]
    return Cycle(done["duration_ms"] / 1000, applied, list(done.get("pending", [])), bool(done.get("ok")))


def converge(command: list[str], specs: Path, env: dict[str, str], cwd: Path, max_cycles: int = 40,
             pause_s: float = 0.5, on_cycle: Callable[[Cycle], None] = lambda _: None) -> Convergence:
    """Cycles until one applies nothing and leaves nothing pending (converged), or `max_cycles`."""
    result, started = Convergence(), time.monotonic()
    for _ in range(max_cycles):
        cycle = one_cycle(command, specs, env, cwd)
        result.cycles.append(cycle)
        on_cycle(cycle)
        if cycle.ok and not cycle.applied and not cycle.pending:
            result.converged = True
            break
        time.sleep(pause_s)
    result.seconds = time.monotonic() - started
    return result


def reconciler_command() -> list[str]:
    from tests.conftest import reconciler_command as command

    return command()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def _nothing(specs: Path) -> None:
    """The example stack as committed."""


def _billing_indexes_cache_distribution(specs: Path) -> None:
    """One commit: a billing switch with an index plus two new indexes, a node type change plus a replica,
    and a distribution change."""
    _edit(specs / "tables.yaml", """  billingMode: PAY_PER_REQUEST
  globalSecondaryIndexes:
    - {name: ByRole, partitionKey: {name: Role, type: S}, projection: ALL}""", """  billingMode: PROVISIONED
  capacity: {read: 5, write: 5}
  globalSecondaryIndexes:
    - {name: ByRole, partitionKey: {name: Role, type: S}, projection: ALL}
    - {name: ByName, partitionKey: {name: Name, type: S}, projection: KEYS_ONLY}
    - {name: ByEmail, partitionKey: {name: Email, type: S}, projection: ALL, capacity: {read: 2, write: 2}}""")
    _edit(specs / "cache.yaml", "nodeType: cache.t3.micro\n  replicas: 1", "nodeType: cache.t3.small\n  replicas: 2")
    _edit(specs / "site.yaml", "comment: Static site", "comment: Static site v2")


def _distribution_again(specs: Path) -> None:
    _edit(specs / "site.yaml", "priceClass: PriceClass_100", "priceClass: PriceClass_200")
    _edit(specs / "site.yaml", "comment: Static site v2", "comment: Static site v3")


def _no_replicas(specs: Path) -> None:
    _edit(specs / "cache.yaml", "replicas: 2", "replicas: 0")


def _replace_cache(specs: Path) -> None:
    name = "  name: app-cache${suffix:=}\n"
    _edit(specs / "cache.yaml", name, name + "  allowReplacement: true\n")
    _edit(specs / "cache.yaml", "port: 6379", "port: 6380")


SCENARIO: list[tuple[str, Callable[[Path], None]]] = [
    ("create the example stack", _nothing),
    ("billing switch + 2 indexes, node type + replica, distribution", _billing_indexes_cache_distribution),
    ("distribution change while it deploys", _distribution_again),
    ("replicas to 0 (failover off first)", _no_replicas),
    ("allowed cache replacement (delete, gone, create)", _replace_cache),
]
