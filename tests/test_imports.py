"""The house's import rules, read from the source (every import, at module level or inside a function):
arrows run downhill (evolve -> population / mutators / trainer -> fitness; nothing imports evolve; fitness
imports none of the others), and no two modules import each other, directly or round a longer circle."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGES = ("evolve", "population", "mutators", "trainer", "fitness", "experiments")
UPHILL = {  # package -> packages it must never import
    "population": {"evolve"},
    "mutators": {"evolve"},
    "trainer": {"evolve"},
    "fitness": {"evolve", "population", "mutators", "trainer"},
}


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Our modules `path` imports ('from a.b import c' counts as a.b.c where that is a module, else a.b)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def import_graph() -> dict[str, set[str]]:
    files = [p for package in PACKAGES for p in (REPO / package).rglob("*.py")]
    modules = {_module(p) for p in files}
    return {_module(p): _imports(p, modules) - {_module(p)} for p in files}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every module on a circle, as one circle per strongly connected group (Tarjan's algorithm)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_no_module_imports_round_a_circle():
    graph = {m: {i for i in deps if not m.startswith(i + ".")} for m, deps in import_graph().items()}
    assert circles(graph) == []  # a package's __init__ re-exporting its own modules is not a circle


def test_imports_run_downhill():
    wrong = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in targets
        if target.split(".")[0] in UPHILL.get(module.split(".")[0], ())
    ]
    assert wrong == []


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
