"""The gate every draft passes before it leaves the package: parses, keeps the harness, is new."""

from __future__ import annotations

import ast
import functools
import threading
from collections.abc import Callable, Sequence

from fitness.interface import check_genome

IsDuplicate = Callable[[str], bool]
# Threads parsing at once can make ast.parse raise a spurious SystemError "AST constructor recursion
# depth mismatch" (seen on CPython 3.11.7; cf. CPython gh-106905). Proposals run in threads, so parse
# one at a time.
_AST_LOCK = threading.Lock()


def parse(source: str) -> ast.Module:
    """ast.parse, serialised across threads; raises SyntaxError like it."""
    with _AST_LOCK:
        return ast.parse(source)


def vet(source: str, parent_sources: Sequence[str], is_duplicate: IsDuplicate | None) -> tuple[str, str] | None:
    """None if `source` is an acceptable child, else (status, one-line reason)."""
    with _AST_LOCK:
        problem = check_genome(source)
    if problem is not None:
        return "invalid", problem
    tree = parse(source)
    for parent in parent_sources:
        if source == parent:
            return "unchanged", "identical to a parent"
        parent_tree = _parse(parent)
        if parent_tree is not None and _same_tree(tree, parent_tree):
            return "unchanged", "differs from a parent only in comments or formatting"
    if is_duplicate is not None and is_duplicate(source):
        return "duplicate", "already in the population"
    return None


@functools.lru_cache(maxsize=32)  # the same parent is vetted against many children; trees are not mutated
def _parse(source: str) -> ast.Module | None:
    try:
        return parse(source)
    except SyntaxError:  # a broken parent (repair) cannot equal a child that parses
        return None


def _same_tree(a: object, b: object) -> bool:
    """Structural equality ignoring positions; stops at the first difference."""
    if type(a) is not type(b):
        return False
    if isinstance(a, ast.AST):
        return all(_same_tree(getattr(a, name), getattr(b, name)) for name in a._fields)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same_tree, a, b))
    return a == b
