"""The tree is the map: one folder per layer, imports that only point down, never in a circle (checked on the source,
function-level and TYPE_CHECKING imports included), small modules and functions, private names private.

- Layers, lowest first: core (the vocabulary), aws (AWS access and AWS's rules), spec and sandbox, kinds, checks,
  engine, agent, cli. A module may import its own layer and the layers below it.
- No module at the package's top but __init__ and __main__: everything lives in the folder of its layer.
- No cycle between any two modules; inside the agent, the HTTP side (agent/serve) knows nothing of the loop.
- No module over 400 lines, no function over 60; a name starting with `_` is imported only inside its package.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "reconciler"
# Lowest first. A module may import its own layer and the layers below it.
LAYERS = [{"core"}, {"aws"}, {"spec", "sandbox"}, {"kinds"}, {"checks"}, {"engine"}, {"agent"}, {"cli", "__main__"}]
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}
THE_LOOP = {"reconciler.agent.daemon", "reconciler.agent.reconcile", "reconciler.agent.record",
            "reconciler.agent.queue", "reconciler.agent.watch", "reconciler.agent.source"}
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


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


def test_every_module_lives_in_the_folder_of_its_layer():
    loose = {m for m, path in modules().items() if m.count(".") == 1 and path.name != "__init__.py"
             and m != "reconciler.__main__"}
    assert loose == set(), "a module at the package's top: move it into its layer's folder"
    assert {top(m) for m in modules() if m != "reconciler"} - set(LEVEL) == set()


def test_imports_only_point_down():
    wrong = [f"{m} imports {i} (layer {LEVEL[top(i)]} > {LEVEL[top(m)]})"
             for m, imported in graph().items() if m != "reconciler" for i in imported
             if LEVEL[top(i)] > LEVEL[top(m)]]
    assert wrong == []


def test_the_layer_check_can_fail():
    assert LEVEL["cli"] > LEVEL["engine"] > LEVEL["kinds"] > LEVEL["aws"] > LEVEL["core"]
    assert top("reconciler.kinds.table.kind") == "kinds" and top("reconciler.core.types") == "core"


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
    serving = {m: imported for m, imported in graph().items() if m.startswith("reconciler.agent.serve")}
    assert serving, "no agent/serve modules found: the check would pass on nothing"
    assert {m: i & THE_LOOP for m, i in serving.items() if i & THE_LOOP} == {}


def long_parts() -> list[str]:
    """Modules over MAX_MODULE_LINES and functions (nested ones included in theirs) over MAX_FUNCTION_LINES."""
    found = []
    for name, path in modules().items():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            found.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{name}.{node.name} (line {node.lineno}): {length} lines")
    return found


def test_no_module_over_400_lines_and_no_function_over_60():
    assert long_parts() == []


def private_imports() -> list[str]:
    """`from package.module import _name` where the importer lives outside that module's package."""
    found = []
    for name, path in modules().items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("reconciler"):
                owner = node.module.rsplit(".", 1)[0] if node.module in modules() else node.module
                for alias in node.names:
                    if alias.name.startswith("_") and not (package + ".").startswith(owner + "."):
                        found.append(f"{name} imports {node.module}.{alias.name}")
    return found


def test_private_names_stay_in_their_package():
    assert private_imports() == []
