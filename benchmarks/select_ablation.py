"""Ablation of evolve's selection changes in the search simulator (issue 16, items 2 and 3).

Each variant is evolve with one setting changed: parents from the front (the survivors plus every genome
evaluated since the last survivor selection) or from the survivors only; the tournament size growing with
the pool (`tournament_share`) or fixed at 3, or power-law sampling over rank instead; paired comparisons
(seed-0 scores, no repeats mid-run) or averages with repeats and the noise gate; the end-of-run
confirmation of the top 4 at fresh seeds, or none. On each landscape seed and width every variant and
parallel greedy run with the same budget (benchmarks.simrun.run_strategy); reported per width and
variant: evolve's win rate against parallel greedy (ties count half) and the median gain, confirmed at
fresh seeds as in benchmarks.simulate.

    python -m benchmarks.select_ablation                  # 16 and 64 slots, 800 children, 20 landscapes
    python -m benchmarks.select_ablation --quick --out /tmp/ablation.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from benchmarks import commit, landscape_data, landscape_fit
from benchmarks.landscape import SurrogateLandscape
from benchmarks.simrun import SimConfig, run_strategy
from population.messages import PopulationConfig

RESULTS = Path(__file__).resolve().parent / "results"
BASE = dict(paired=True, parent_pool="front", tournament_share=1.0, rank_power=0.0)
UNPAIRED = {"paired": False}
VARIANTS = {  # name: (population settings over BASE, confirmation top); the defaults are "defaults"
    "defaults (share 1.0, front, paired, confirmation)": ({}, 4),
    "share 1.0, front, unpaired": (UNPAIRED, 4),
    "share 0.5, front, paired": ({"tournament_share": 0.5}, 4),
    "share 2.0, front, paired": ({"tournament_share": 2.0}, 4),
    "fixed k=3, front, paired": ({"tournament_share": 0.0}, 4),
    "power law r^-3, front, paired": ({"rank_power": 3.0}, 4),
    "share 1.0, survivors, paired": ({"parent_pool": "survivors"}, 4),
    "share 1.0, front, paired, no confirmation": ({}, 0),
    "share 1.0, survivors, unpaired": (UNPAIRED | {"parent_pool": "survivors"}, 4),
    "share 0.5, survivors, unpaired": (UNPAIRED | {"parent_pool": "survivors", "tournament_share": 0.5}, 4),
    "share 2.0, survivors, unpaired": (UNPAIRED | {"parent_pool": "survivors", "tournament_share": 2.0}, 4),
    "share 2.0, survivors, paired": ({"parent_pool": "survivors", "tournament_share": 2.0}, 4),
    "share 2.0, survivors, unpaired, no confirmation": (
        UNPAIRED | {"parent_pool": "survivors", "tournament_share": 2.0},
        0,
    ),
    "share 2.0, front, unpaired": (UNPAIRED | {"tournament_share": 2.0}, 4),
    "before (k=3, survivors, unpaired, no confirmation)": (
        UNPAIRED | {"parent_pool": "survivors", "tournament_share": 0.0},
        0,
    ),
}


def config(name: str) -> SimConfig:
    changes, top = VARIANTS[name]
    return SimConfig(population=PopulationConfig(**(BASE | changes)), confirm_top=top)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.quick:
        args.slots, args.children, args.seeds = [8], 60, 2
    started = time.perf_counter()
    observations = landscape_data.load()
    lam, _ = landscape_fit.best_lambda(observations)
    runs = []
    for seed in range(1, args.seeds + 1):
        landscape = SurrogateLandscape.fitted(seed, observations, lam)
        for slots in args.slots:
            reference = run_strategy("parallel-greedy", landscape, slots, args.children, seed).gain
            for name in VARIANTS:
                h = run_strategy("evolve", landscape, slots, args.children, seed, config(name))
                runs.append(dict(variant=name, slots=slots, seed=seed, gain=h.gain, reference=reference,
                                 children=h.children))  # fmt: skip
        print(f"select_ablation: landscape {seed}/{args.seeds} ({time.perf_counter() - started:.0f} s)", flush=True)
    report = _report(args, runs, time.perf_counter() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print("\n".join(table(report)))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.select_ablation", description=__doc__.split("\n")[0])
    p.add_argument("--slots", type=int, nargs="+", default=[16, 64])
    p.add_argument("--children", type=int, default=800)
    p.add_argument("--seeds", type=int, default=20, help="landscape seeds")
    p.add_argument("--quick", action="store_true", help="8 slots, 60 children, 2 landscapes (tests)")
    p.add_argument("--out", type=Path, default=RESULTS / "select_ablation.json")
    return p


def summarize(runs: list[dict], slots: int, variant: str) -> dict:
    mine = [r for r in runs if r["slots"] == slots and r["variant"] == variant]
    wins = sum(1.0 if r["gain"] > r["reference"] else 0.5 if r["gain"] == r["reference"] else 0.0 for r in mine)
    return {
        "slots": slots,
        "variant": variant,
        "win_rate_vs_parallel_greedy": round(wins / len(mine), 3),
        "median_gain": round(statistics.median(r["gain"] for r in mine), 4),
        "median_gain_parallel_greedy": round(statistics.median(r["reference"] for r in mine), 4),
        "median_children": statistics.median(r["children"] for r in mine),
        "landscapes": len(mine),
    }


def _report(args, runs: list[dict], seconds: float) -> dict:
    return {
        "benchmark": "select_ablation",
        "commit": commit(),
        "command": "python -m benchmarks.select_ablation " + " ".join(sys.argv[1:]),
        "settings": {"slots": args.slots, "children": args.children, "landscape_seeds": args.seeds},
        "variants": {n: {"population": BASE | c, "confirm_top": t} for n, (c, t) in VARIANTS.items()},
        "table": [summarize(runs, slots, name) for slots in args.slots for name in VARIANTS],
        "runs": [r | {"gain": round(r["gain"], 5), "reference": round(r["reference"], 5)} for r in runs],
        "wall_seconds": round(seconds, 1),
    }


def table(report: dict) -> list[str]:
    lines = [
        "| slots | evolve variant | win rate vs parallel-greedy | median gain (bpb) | parallel-greedy's | children |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["table"]:
        lines.append(
            f"| {r['slots']} | {r['variant']} | {r['win_rate_vs_parallel_greedy']:.2f} | {r['median_gain']:.4f} "
            f"| {r['median_gain_parallel_greedy']:.4f} | {r['median_children']:g} |"
        )
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
