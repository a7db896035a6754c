"""A genome's ancestry as data: the tree from a genome back to the seed through every parent (both parents
of a crossover), each node with its id, operator, one-line description, mean val_bpb and its change from
each parent, and the tree's text lines. `evolve lineage` (evolve.lineage_view) prints it; evolve.figures
and the HTML report draw it."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from evolve.runview import (
    UNEVALUATED,
    GenomeStats,
    fmt_bpb,
    fmt_delta,
    genome_stats,
)
from population import Genome, Population


@dataclass(frozen=True)
class Node:
    genome: Genome
    stats: GenomeStats
    deltas: tuple[float, ...]  # val_bpb minus each parent's (nan where either never evaluated ok)
    diffs: tuple[str, ...]  # unified diff of train.py from each parent

    @property
    def improved(self) -> bool | None:
        """Better than its first parent (None for the seed or where either has no score)."""
        return self.deltas[0] < 0 if self.deltas and math.isfinite(self.deltas[0]) else None


@dataclass(frozen=True)
class LineageView:
    genome_id: str
    nodes: dict[str, Node]  # the genome and every ancestor, parents before children


@dataclass(frozen=True)
class TreeLine:
    genome_id: str
    prefix: str  # box-drawing characters that place the line in the tree
    repeat: bool  # an ancestor already shown above (reached again through another parent)


def lineage_view(pop: Population, genome_id: str, stats: dict[str, GenomeStats] | None = None) -> LineageView:
    stats = genome_stats(pop.archive()) if stats is None else stats
    lineage = pop.lineage(genome_id)
    diffs = {(step.genome_id, step.parent_id): step.diff for step in lineage.steps}
    nodes: dict[str, Node] = {}
    for gid in [*lineage.ancestors, lineage.genome_id]:
        genome = pop.genome(gid)
        own = stats.get(gid, UNEVALUATED)
        deltas = tuple(own.val_bpb - nodes[p].stats.val_bpb for p in genome.parents)
        nodes[gid] = Node(genome, own, deltas, tuple(diffs[gid, p] for p in genome.parents))
    return LineageView(lineage.genome_id, nodes)


def tree(view: LineageView) -> Iterator[TreeLine]:
    """The genome first, then each parent's ancestry below it, depth first (no recursion: lineages run deep)."""
    shown: set[str] = set()
    stack = [(view.genome_id, "", "")]  # (genome, this line's prefix, the prefix its parents continue)
    while stack:
        gid, prefix, inner = stack.pop()
        repeat = gid in shown
        shown.add(gid)
        yield TreeLine(gid, prefix, repeat)
        if repeat:
            continue
        parents = view.nodes[gid].genome.parents
        for i in reversed(range(len(parents))):
            last = i == len(parents) - 1
            stack.append((parents[i], inner + ("└─ " if last else "├─ "), inner + ("   " if last else "│  ")))


def label(view: LineageView, line: TreeLine) -> str:
    node = view.nodes[line.genome_id]
    head = f"{node.genome.short_id}  {node.genome.operator}"
    if line.repeat:
        return f"{head}  (shown above)"
    return f"{head}  {score(node.stats)}{changes(node)}  {node.genome.description}"


def score(stats: GenomeStats) -> str:
    if stats.status != "ok":
        return stats.status
    return fmt_bpb(stats.val_bpb) + (f" (n={stats.count})" if stats.count > 1 else "")


def changes(node: Node) -> str:
    """'  Δ -0.0123' from one parent; from two, each with the parent it is measured against."""
    if not node.deltas:
        return ""
    if len(node.deltas) == 1:
        return f"  Δ {fmt_delta(node.deltas[0])}"
    parts = [f"{fmt_delta(d)} vs {p[:7]}" for d, p in zip(node.deltas, node.genome.parents, strict=True)]
    return "  Δ " + ", ".join(parts)


def text_lines(view: LineageView, width: int) -> list[str]:
    lines = []
    for line in tree(view):
        text = line.prefix + label(view, line)
        lines.append(text if len(text) <= width else text[: width - 1] + "…")
    return lines
