"""Imports point down: the kinds never import the engine, the agent or the CLI; the spec parser never
imports the kinds. Checked on the source (function-level imports included), so a cycle cannot creep back."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

# Lowest first. A module may import its own layer and the layers below it.
LAYERS = [
    {"errors", "model", "fields", "exported", "ratelimit", "intents", "log", "yamledit"},
    {"aws", "secrets", "specs", "sandbox"},
    {"resources", "health", "lease"},
    {"engine", "iam", "loading"},
    {"agent"},
    {"cli", "__main__"},
]
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def top(module: str) -> str:
    return module.split(".", 1)[0]


def imports_of(path: Path) -> set[str]:
    """The reconciler modules a file imports (relative imports resolved), as their top-level names."""
    package = path.relative_to(ROOT / "reconciler").parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                target = [*base, *(node.module.split(".") if node.module else [])]
                names = [target[0]] if target else [alias.name for alias in node.names]
                found.update(names)
            elif node.module and node.module.startswith("reconciler."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("reconciler."))
    return found


def test_every_module_has_a_layer():
    package = ROOT / "reconciler"
    modules = {p.stem if p.parent == package else p.relative_to(package).parts[0]
               for p in package.rglob("*.py") if p.name != "__init__.py" or p.parent != package}
    assert modules - set(LEVEL) == set()


def test_imports_only_point_down():
    wrong = []
    for path in sorted((ROOT / "reconciler").rglob("*.py")):
        parts = path.relative_to(ROOT / "reconciler").parts
        own = top(parts[0].removesuffix(".py")) if len(parts) > 1 else path.stem
        if own == "__init__":
            continue
        for imported in imports_of(path):
            if imported in LEVEL and LEVEL[imported] > LEVEL[own]:
                wrong.append(f"{path.relative_to(ROOT)} imports {imported} (layer {LEVEL[imported]} > {LEVEL[own]})")
    assert wrong == []
