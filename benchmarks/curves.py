"""Benchmark: how well a partial loss curve predicts the final score, measured on real runs' archives.

For every child trained at seed 0 whose first parent has a seed-0 curve too, both fully trained (status ok),
it compares the child's training loss with its parent's over the same stretch of the budget, the mean over
[p - WINDOW, p], with what the scorer measured at the end: d(p) = child - parent (nats of training loss),
D = child's val_bpb - parent's. Reported per p: the rank correlation of d(p) with D (do children that trail
early end worse?), the least-squares slope of d(p) on D and the residual's sd (the model the simulator's
landscape draws curves from), and the pooled rank correlation of the window's loss with val_bpb over every
seed-0 evaluation. Per threshold (p, margin): the share of children pruned (d(p) > margin), the false-prune
rates (pruned children that beat their parent; that were the lowest seed-0 score of the run so far when
they finished), the share of children worse than their parent that are pruned, and the budget saved.

    python -m benchmarks.curves RUN_DIR [RUN_DIR ...]     # writes benchmarks/results/curves.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from benchmarks import commit
from fitness.curves import mean_loss
from population import Population
from population.archive import curve

RESULTS = Path(__file__).resolve().parent / "results"
WINDOW = 0.1
PROGRESS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
THRESHOLDS = tuple((at, margin) for at in (0.3, 0.4, 0.5) for margin in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3))


def seed0_rows(run_dir: Path) -> list[dict]:
    """Every ok evaluation at training seed 0 with a curve, in recording order."""
    with Population.read(run_dir) as pop:
        frame = pop.archive().sort_values("eval_id")
    rows = [r for r in frame.to_dict("records") if r["seed"] == 0 and r["status"] == "ok" and curve(r)]
    return [dict(r, curve=curve(r), run=str(run_dir)) for r in rows]


def pairs(rows: list[dict]) -> list[dict]:
    """(child, parent) pairs at seed 0, each with `best_so_far`: the child beat every earlier seed-0 score."""
    first = {}
    for row in rows:
        first.setdefault(row["genome_id"], row)
    found, lowest = [], math.inf
    for row in rows:
        parent = first.get(row["parents"].split(",")[0]) if row["kind"] == "child" else None
        if parent is not None and parent is not row:
            found.append(dict(child=row, parent=parent, best_so_far=row["val_bpb"] < lowest))
        lowest = min(lowest, row["val_bpb"])
    return found


def gap(pair: dict, at: float) -> float | None:
    start = max(0.0, at - WINDOW)
    mine, theirs = mean_loss(pair["child"]["curve"], start, at), mean_loss(pair["parent"]["curve"], start, at)
    return None if mine is None or theirs is None else mine - theirs


def by_progress(found: list[dict], rows: list[dict]) -> list[dict]:
    out = []
    for at in PROGRESS:
        both = [(g, p["child"]["val_bpb"] - p["parent"]["val_bpb"]) for p in found if (g := gap(p, at)) is not None]
        d, big_d = (np.array(x) for x in zip(*both, strict=True)) if len(both) > 2 else (np.array([]),) * 2
        slope = float(np.dot(d, big_d) / np.dot(big_d, big_d)) if len(d) else math.nan
        pooled = [(m, r["val_bpb"]) for r in rows if (m := mean_loss(r["curve"], max(0.0, at - WINDOW), at))]
        out.append(
            dict(
                at=at,
                pairs=len(d),
                spearman_gap=_spearman(d, big_d),
                slope=_round(slope),
                residual_sd=_round(float(np.std(d - slope * big_d, ddof=1))) if len(d) > 2 else None,
                spearman_pooled=_spearman(*(np.array(x) for x in zip(*pooled, strict=True))) if pooled else None,
            )
        )
    return out


def thresholds(found: list[dict]) -> list[dict]:
    out = []
    for at, margin in THRESHOLDS:
        judged = [(p, g) for p in found if (g := gap(p, at)) is not None]
        pruned = [p for p, g in judged if g > margin]
        worse = [p for p, _ in judged if p["child"]["val_bpb"] > p["parent"]["val_bpb"]]
        beat = sum(p["child"]["val_bpb"] < p["parent"]["val_bpb"] for p in pruned)
        out.append(
            dict(
                at=at,
                margin=margin,
                children=len(judged),
                pruned=len(pruned),
                false_prune_beat_parent=_share(beat, len(pruned)),
                false_prune_best_so_far=_share(sum(p["best_so_far"] for p in pruned), len(pruned)),
                bests_pruned=f"{sum(p['best_so_far'] for p in pruned)} of {sum(p['best_so_far'] for p, _ in judged)}",
                worse_pruned=_share(sum(p in worse for p in pruned), len(worse)),
                budget_saved=_share(len(pruned) * (1 - at), len(judged)),
            )
        )
    return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    return _round(float(stats.spearmanr(a, b).statistic)) if len(a) > 2 else None


def _share(n: float, total: int) -> float | None:
    return round(n / total, 3) if total else None


def _round(x: float) -> float | None:
    return round(x, 4) if math.isfinite(x) else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.curves", description=__doc__.split("\n")[0])
    p.add_argument("run_dirs", type=Path, nargs="+")
    p.add_argument("--out", type=Path, default=RESULTS / "curves.json")
    args = p.parse_args(argv)
    rows = [row for run in args.run_dirs for row in seed0_rows(run)]
    found = [pair for run in args.run_dirs for pair in pairs(seed0_rows(run))]
    report = {
        "benchmark": "curves",
        "commit": commit(),
        "command": "python -m benchmarks.curves " + " ".join(sys.argv[1:]),
        "runs": [str(r) for r in args.run_dirs],
        "window": WINDOW,
        "evaluations": len(rows),
        "pairs": len(found),
        "by_progress": by_progress(found, rows),
        "thresholds": thresholds(found),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for row in report["by_progress"]:
        print(json.dumps(row))
    for row in report["thresholds"]:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
