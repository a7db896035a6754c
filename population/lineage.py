"""Lineage as data: a genome's ancestry back to the seed, with the val_bpb change and diff of each step.

Pure functions over lookups passed in (`get` a Genome, `score` its mean val_bpb, `parents_of` its
parents), so the CLI and reports can render the result without touching git.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from population.messages import Genome


@dataclass(frozen=True)
class LineageStep:
    """One parent -> child edge: what the child changed relative to that parent."""

    genome_id: str
    parent_id: str
    operator: str
    description: str
    generation: int
    val_bpb: float  # the child's mean val_bpb; nan if it never evaluated ok
    parent_val_bpb: float
    diff: str  # unified diff of train.py, parent -> child

    @property
    def delta(self) -> float:
        """Change in val_bpb (negative = better)."""
        return self.val_bpb - self.parent_val_bpb


@dataclass(frozen=True)
class Lineage:
    genome_id: str
    ancestors: tuple[str, ...]  # every ancestor through all parents, parents before children
    steps: tuple[LineageStep, ...]  # one per parent edge into the genome or any ancestor, in that order
    path: tuple[LineageStep, ...]  # the first-parent chain from the seed to the genome

    @property
    def root(self) -> str:
        return self.ancestors[0] if self.ancestors else self.genome_id


def ancestry(genome_id: str, parents_of: Callable[[str], tuple[str, ...]]) -> list[str]:
    """All ancestors of `genome_id` (not itself), parents before children (iterative post-order DFS)."""
    order: list[str] = []
    seen = {genome_id}
    stack = [(genome_id, iter(parents_of(genome_id)))]
    while stack:
        node, parents = stack[-1]
        parent = next(parents, None)
        if parent is None:
            stack.pop()
            if node != genome_id:
                order.append(node)
        elif parent not in seen:
            seen.add(parent)
            stack.append((parent, iter(parents_of(parent))))
    return order


def build_lineage(genome_id: str, get: Callable[[str], Genome], score: Callable[[str], float]) -> Lineage:
    """The lineage of `genome_id`; `get` returns a Genome, `score` its mean val_bpb (nan if none)."""
    genomes: dict[str, Genome] = {}

    def fetch(gid: str) -> Genome:
        if gid not in genomes:
            genomes[gid] = get(gid)
        return genomes[gid]

    ancestors = ancestry(genome_id, lambda gid: fetch(gid).parents)
    edges = {
        (child, parent): _step(fetch(parent), fetch(child), score)
        for child in [*ancestors, genome_id]
        for parent in fetch(child).parents
    }
    path, node = [], genome_id
    while fetch(node).parents:
        path.append(edges[node, fetch(node).parents[0]])
        node = fetch(node).parents[0]
    return Lineage(genome_id, tuple(ancestors), tuple(edges.values()), tuple(reversed(path)))


def merge_base(a: str, b: str, parents_of: Callable[[str], tuple[str, ...]], order: Mapping[str, int]) -> str | None:
    """The most recent common ancestor of `a` and `b` (either may be it), or None.

    `order` numbers genomes parents-before-children, so the latest common ancestor in it is never an
    ancestor of another common ancestor.
    """
    common = ({a, *ancestry(a, parents_of)}) & ({b, *ancestry(b, parents_of)})
    return max(common, key=order.__getitem__) if common else None


def unified_diff(parent: Genome, child: Genome) -> str:
    return "".join(
        difflib.unified_diff(
            parent.source.splitlines(keepends=True),
            child.source.splitlines(keepends=True),
            fromfile=f"a/{parent.short_id}/train.py",
            tofile=f"b/{child.short_id}/train.py",
        )
    )


def _step(parent: Genome, child: Genome, score: Callable[[str], float]) -> LineageStep:
    return LineageStep(
        genome_id=child.id,
        parent_id=parent.id,
        operator=child.operator,
        description=child.description,
        generation=child.generation,
        val_bpb=score(child.id),
        parent_val_bpb=score(parent.id),
        diff=unified_diff(parent, child),
    )
