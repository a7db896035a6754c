"""The genome contract, checked statically: parse, import the harness, draw batches, submit a model.

Two dialects meet it: evolve's own (`import harness`, `harness.batches(...)`, `harness.submit(model)`)
and autoresearch's (`from prepare import ...`, calling `make_dataloader(...)` and `evaluate_bpb(...)`,
which fitness.autoresearch_prepare serves from the same harness inside the sandbox).

Cheap enough (about 9 ms for the seed, most of it ast.parse) to run on every draft before it is
committed, and again in the trainer before any process is started.
"""

from __future__ import annotations

import ast

REQUIRED_CALLS = ("batches", "submit")  # harness.<name>(...) must each appear at least once
PREPARE_CALLS = ("make_dataloader", "evaluate_bpb")  # the same two roles in an autoresearch script


def check_genome(source: str) -> str | None:
    """Return None if `source` satisfies the genome contract, else a one-line reason."""
    try:
        tree = ast.parse(source, filename="train.py")
    except SyntaxError as e:
        return f"syntax error at line {e.lineno}: {e.msg}"
    if uses_prepare(tree):
        called = _prepare_calls(tree)
        missing = [name for name in PREPARE_CALLS if name not in called]
        return ("never calls " + ", ".join(f"{name}()" for name in missing)) if missing else None
    if not _imports_harness(tree):
        return "does not `import harness` (nor `from prepare import ...`, autoresearch's way)"
    called = _harness_calls(tree)
    missing = [name for name in REQUIRED_CALLS if name not in called]
    if missing:
        return "never calls " + ", ".join(f"harness.{name}()" for name in missing)
    return None


def uses_prepare(tree: ast.AST) -> bool:
    """The script is autoresearch-style: it imports names from `prepare`."""
    return any(
        isinstance(node, ast.ImportFrom) and node.module == "prepare" and not node.level for node in ast.walk(tree)
    )


def _prepare_calls(tree: ast.AST) -> set[str]:
    """Names imported from prepare (under their own names) that the script calls."""
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "prepare" and not node.level
        for alias in node.names
        if alias.asname is None
    }
    called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    return imported & called


def _imports_harness(tree: ast.AST) -> bool:
    return any(
        isinstance(node, ast.Import) and any(alias.name == "harness" and alias.asname is None for alias in node.names)
        for node in ast.walk(tree)
    )


def _harness_calls(tree: ast.AST) -> set[str]:
    return {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "harness"
    }
