"""The report's figures, drawn with matplotlib in seaborn's style: search progress, a lineage graph and a
genome's loss curve against its parents'.

Each function takes plain data (the archive frame, a LineageView) and returns a Figure, so tests can
read back exactly what was plotted (every artist that carries data has a `gid`). No pyplot: figures
are not registered globally, so drawing many never leaks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from evolve.lineage import LineageView, changes, score
from population.archive import curve as row_curve
from population.export import best_history
from population.messages import PopulationConfig

GREEN, GRAY, RED, BLUE = "#2ca02c", "#9a9a9a", "#d62728", "#8fb8de"


@dataclass(frozen=True)
class Progress:
    """Every finished child evaluation in recording order, numbered from 1, and the confirmed best over time."""

    index: np.ndarray  # child number of each ok child
    val_bpb: np.ndarray
    improved: np.ndarray  # bool: this child became the best (results.tsv's "keep")
    best: np.ndarray  # the best's mean val_bpb just before child 1..n+1 started (nan while there is none)
    failed: np.ndarray  # child numbers of failed children
    pruned: np.ndarray  # child numbers of children stopped early on their loss curve (not failures)
    descriptions: tuple[str, ...]  # of the ok children
    seed_val_bpb: float
    confirmed_index: np.ndarray  # child number (0: the seed) of each genome confirmed at fresh seeds
    confirmed_val_bpb: np.ndarray  # its mean over the confirmation seeds


def progress(frame: pd.DataFrame, seed_id: str, config: PopulationConfig) -> Progress:
    """The best is population.export.best_history's: the one `status`, `lineage best` and the summary show."""
    frame = frame.sort_values("eval_id").reset_index(drop=True)
    steps = best_history(frame, seed_id, config)
    history, kept = [step.val_bpb for step in steps], {step.best_id for step in steps}
    is_child = ((frame.kind == "child") & (frame.status != "interrupted")).to_numpy()
    children = frame[is_child]
    rows = np.flatnonzero(is_child)  # each child's row; the best before child k is the one after row rows[k] - 1
    before = [history[r - 1] if r > 0 else math.nan for r in rows]
    best = [*before, history[-1] if history else math.nan]
    number = np.arange(1, len(children) + 1)
    values = children.val_bpb.to_numpy(dtype=float)
    ok = (children.status == "ok").to_numpy() & np.isfinite(values)
    stopped = (children.status == "pruned").to_numpy()
    seed_rows = frame[(frame.genome_id == seed_id) & (frame.status == "ok")].val_bpb
    return Progress(
        index=number[ok],
        val_bpb=values[ok],
        improved=children.genome_id[ok].isin(kept).to_numpy(dtype=bool),
        best=np.asarray(best, dtype=float),
        failed=number[~ok & ~stopped],
        pruned=number[stopped],
        descriptions=tuple(children.description[ok]),
        seed_val_bpb=float(seed_rows.mean()) if len(seed_rows) else math.nan,
        **_confirmed(frame, children, seed_id),
    )


def _confirmed(frame: pd.DataFrame, children: pd.DataFrame, seed_id: str) -> dict:
    """Where the confirmed genomes sit on the plot: their child number and their confirmation mean."""
    rows = frame[(frame.kind == "confirm") & (frame.status == "ok")]
    means = rows.groupby("genome_id").val_bpb.mean()
    number = {g: i + 1 for i, g in enumerate(children.genome_id)} | {seed_id: 0}
    known = [g for g in means.index if g in number]
    return dict(
        confirmed_index=np.asarray([number[g] for g in known], dtype=float),
        confirmed_val_bpb=means[known].to_numpy(dtype=float),
    )


def progress_figure(data: Progress) -> Figure:
    """Each child's val_bpb by child number, those that became the best highlighted, the best as a step line."""
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        fig = Figure(figsize=(12, 6), layout="constrained")
        ax = fig.add_subplot()
        rest, imp = ~data.improved, data.improved
        ax.scatter(data.index[rest], data.val_bpb[rest], s=18, c=GRAY, alpha=0.6, label="child", gid="rest")
        ax.scatter(
            data.index[imp],
            data.val_bpb[imp],
            s=50,
            c=GREEN,
            edgecolors="black",
            label="became the best",
            gid="improvements",
        )
        ax.step(
            np.arange(len(data.best)),
            data.best,
            where="post",
            c=GREEN,
            lw=1.5,
            label="best (search score, then confirmed)",
            gid="running-best",
        )
        if len(data.confirmed_index):
            ax.scatter(data.confirmed_index, data.confirmed_val_bpb, marker="D", s=46, c=BLUE, edgecolors="black",
                       label="confirmed at fresh seeds (mean)", gid="confirmed")  # fmt: skip
        if math.isfinite(data.seed_val_bpb):
            ax.axhline(data.seed_val_bpb, ls="--", c=GRAY, lw=1, label=f"seed {data.seed_val_bpb:.4f}", gid="seed")
        if len(data.failed):
            bottom = ax.get_xaxis_transform()  # x in data, y in axes coordinates: failures sit along the bottom
            ax.scatter(data.failed, np.full(len(data.failed), 0.03), transform=bottom, marker="x", c=RED, s=24,
                       label=f"failed ({len(data.failed)})", gid="failed")  # fmt: skip
        if len(data.pruned):
            bottom = ax.get_xaxis_transform()
            ax.scatter(data.pruned, np.full(len(data.pruned), 0.03), transform=bottom, marker="v", c=GRAY, s=20,
                       label=f"pruned ({len(data.pruned)})", gid="pruned")  # fmt: skip
        for x, y, text in zip(data.index[imp], data.val_bpb[imp], np.asarray(data.descriptions)[imp], strict=True):
            ax.annotate(_short(text, 40), (x, y), xytext=(5, 5), textcoords="offset points", fontsize=8, rotation=15)
        children = len(data.index) + len(data.failed) + len(data.pruned)
        ax.set_title(f"evolve: {children} children, {int(imp.sum())} became the best")
        ax.set_xlabel("child #")
        ax.set_ylabel("val_bpb (lower is better)")
        ax.set_xlim(-0.5, max(children, 1) + 0.5)
        ax.legend(loc="upper right", fontsize=9)
    return fig


def lineage_figure(view: LineageView) -> Figure:
    """The lineage as a graph: the seed at the top, the genome at the bottom, an edge per parent."""
    place = _layout(view)
    depth, breadth = max(y for _, y in place.values()) + 1, max(x for x, _ in place.values()) + 1
    width, height = min(60.0, max(6.0, 2.8 * breadth)), min(150.0, max(3.0, 1.25 * depth))
    with sns.axes_style("white"), sns.plotting_context("notebook"):
        fig = Figure(figsize=(width, height), layout="constrained")
        ax = fig.add_subplot()
        for gid, node in view.nodes.items():
            for parent in node.genome.parents:
                (x0, y0), (x1, y1) = place[parent], place[gid]
                ax.plot([x0, x1], [-y0, -y1], c=GRAY, lw=1.2, zorder=1, gid=f"{parent}->{gid}")
        for gid, node in view.nodes.items():
            x, y = place[gid]
            text = (
                f"{node.genome.short_id} {node.genome.operator}\n{score(node.stats)}{changes(node).replace('Δ', '  Δ')}"
            )
            text += "\n" + _short(node.genome.description, 34)
            ax.text(x, -y, text, ha="center", va="center", fontsize=8, zorder=2, gid=gid,
                    bbox=dict(boxstyle="round,pad=0.4", fc=_colour(node), ec="#555555"))  # fmt: skip
        ax.set_xlim(-0.7, breadth - 0.3)
        ax.set_ylim(-depth + 0.4, 0.6)
        ax.set_axis_off()
        root = view.nodes[view.genome_id]
        ax.set_title(f"lineage of {root.genome.short_id} ({root.genome.operator}): val_bpb {score(root.stats)}")
    return fig


@dataclass(frozen=True)
class Curves:
    """A genome's training-loss curve and its parents', each from its first evaluation at training seed 0
    (else its first with a curve): the losses are the genomes' own reports, shown, never scored."""

    genome_id: str
    lines: tuple[tuple[str, str, str, tuple], ...]  # (genome id, "child" | "parent", status, curve)


def curves(frame: pd.DataFrame, genome_id: str, parents: tuple[str, ...]) -> Curves:
    lines = []
    for gid, role in ((genome_id, "child"), *((p, "parent") for p in parents)):
        rows = frame[frame.genome_id == gid].sort_values("eval_id")
        rows = sorted(rows.to_dict("records"), key=lambda r: r["seed"] != 0)
        row = next((r for r in rows if row_curve(r)), None)
        if row is not None:
            lines.append((gid, role, row["status"], row_curve(row)))
    return Curves(genome_id, tuple(lines))


def curves_figure(data: Curves) -> Figure:
    """Each curve as training loss over the fraction of the budget used; a pruned child's ends where it was
    stopped."""
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        fig = Figure(figsize=(10, 5), layout="constrained")
        ax = fig.add_subplot()
        for gid, role, status, curve in data.lines:
            progress, loss = zip(*curve, strict=True)
            colour, width = (GREEN, 2.0) if role == "child" else (GRAY, 1.2)
            text = f"{gid[:7]} ({role})" + ("" if status == "ok" else f", {status}")
            ax.plot(progress, loss, c=colour, lw=width, label=text, gid=gid)
        ax.set_title(f"training loss of {data.genome_id[:7]} and its parents (their own reports)")
        ax.set_xlabel("fraction of the training budget")
        ax.set_ylabel("training loss (nats)")
        ax.set_xlim(0.0, 1.0)
        if data.lines:
            ax.legend(loc="upper right", fontsize=9)
        else:
            ax.text(0.5, 0.5, "no loss curve recorded", ha="center", transform=ax.transAxes)
    return fig


def save(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _layout(view: LineageView) -> dict[str, tuple[float, int]]:
    """(x, depth) per genome: depth is the longest path from a root; within a depth, nodes sit in the
    order of their parents' mean x, which keeps crossing edges few."""
    depth: dict[str, int] = {}
    for gid, node in view.nodes.items():  # parents come first
        depth[gid] = 1 + max((depth[p] for p in node.genome.parents), default=-1)
    place: dict[str, tuple[float, int]] = {}
    for level in range(max(depth.values()) + 1):
        row = [g for g in view.nodes if depth[g] == level]
        row.sort(key=lambda g: np.mean([place[p][0] for p in view.nodes[g].genome.parents] or [0.0]))
        place.update({g: (float(i), level) for i, g in enumerate(row)})
    return place


def _colour(node) -> str:
    if node.stats.status != "ok":
        return "#f4b6b6"
    return {True: "#b9e4b0", False: "#f6d7a7", None: BLUE}[node.improved]


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
