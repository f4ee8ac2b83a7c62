"""Imports point down, and never in a circle: checked on the source (function-level imports and TYPE_CHECKING
imports included), module by module, so a cycle cannot creep back.

- Layers: the kinds never import the engine, the agent or the CLI; the spec parser never imports the kinds.
- No cycle between any two modules of the package (a kind importing another kind that imports it back, the
  HTTP side and the loop importing each other).
- Inside the agent, the HTTP side reads the status store and knows nothing of the reconcile loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "reconciler"
# Lowest first. A module may import its own layer and the layers below it.
LAYERS = [
    {"errors", "model", "fields", "exported", "ratelimit", "intents", "log", "yamledit", "durations", "state",
     "typical", "cdn", "plainjson", "constraints", "apimodel"},
    {"aws", "secrets", "specs", "sandbox", "models", "expect", "environments", "viewer"},
    {"resources", "health", "lease", "windows", "site", "requestcheck"},
    {"engine", "iam", "loading"},
    {"agent"},
    {"cli", "__main__"},
]
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}
THE_LOOP = {"reconciler.agent.daemon", "reconciler.agent.reconcile", "reconciler.agent.record",
            "reconciler.agent.queue", "reconciler.agent.watch", "reconciler.agent.source"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The package's modules a file imports (relative imports resolved; `from . import x` names module x)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module and node.module.startswith("reconciler"):
                target = node.module
            else:
                continue
            for alias in node.names:  # `from . import dynamodb` imports a module; `from .x import y` imports x
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("reconciler"))
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(path, set(found)) for name, path in found.items()}


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_module_has_a_layer():
    assert {top(m) for m in modules() if m != "reconciler"} - set(LEVEL) == set()


def test_imports_only_point_down():
    wrong = [f"{m} imports {i} (layer {LEVEL[top(i)]} > {LEVEL[top(m)]})"
             for m, imported in graph().items() if m != "reconciler" for i in imported
             if LEVEL[top(i)] > LEVEL[top(m)]]
    assert wrong == []


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle's smallest representative, found by depth-first search from each module."""
    found: set[tuple[str, ...]] = set()

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt == start:
                i = path.index(min(path))
                found.add(tuple(path[i:] + path[:i]))
            elif nxt not in path and nxt > start:
                walk(start, nxt, [*path, nxt])

    for start in sorted(edges):
        walk(start, start, [start])
    return [list(c) for c in sorted(found)]


def test_no_module_imports_one_that_imports_it_back():
    # a package importing its own modules to register them (resources/__init__) is not a cycle of design
    edges = {m: {i for i in imported if not (m.startswith(i + ".") and (PACKAGE / "/".join(i.split(".")[1:])
                                                                          / "__init__.py").exists())}
             for m, imported in graph().items()}
    assert cycles(edges) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_http_side_knows_nothing_of_the_loop():
    imported = graph()["reconciler.agent.http"]
    assert imported & THE_LOOP == set(), imported


def test_a_module_over_500_lines_says_why_at_its_top():
    """Small modules with one job; a longer one says in its docstring why it is one module."""
    unexplained = []
    for name, path in modules().items():
        text = path.read_text()
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if text.count("\n") > 500 and "Over 500 lines" not in docstring:
            unexplained.append(f"{name} ({text.count(chr(10))} lines)")
    assert unexplained == []
