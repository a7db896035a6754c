"""Ablation: the evolve strategy with and without transplants, in the simulator at mission scale.

A transplant brings the knob changes of a survivor from another lineage onto the best (evolve.strategies,
mutators.merge.transplant); `MutatorConfig.transplant_rate` is the share of proposals that are one. Each
rate runs on the same landscapes and slot counts as benchmarks.simulate (800 children, confirmed at fresh
seeds), beside parallel greedy. Reported per width and rate: median gain, IQR, the paired win rate against
rate 0 and against parallel greedy (ties count half), and the median number of transplant children.

    python -m benchmarks.transplant_ablation                     # rates 0, 0.1, 0.25, 0.5; 16 and 64 slots
    python -m benchmarks.transplant_ablation --seeds 2 --children 60 --slots 8 --out /tmp/t.json
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
from benchmarks.population_bench import machine
from benchmarks.simrun import History, SimConfig, run_strategy

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.transplant_ablation", description=__doc__.split("\n")[0])
    p.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.1, 0.25, 0.5])
    p.add_argument("--slots", type=int, nargs="+", default=[16, 64])
    p.add_argument("--children", type=int, default=800)
    p.add_argument("--seeds", type=int, default=20, help="landscape seeds")
    p.add_argument("--out", type=Path, default=RESULTS / "transplant_ablation.json")
    args = p.parse_args(argv)
    started = time.perf_counter()
    observations = landscape_data.load()
    lam, _ = landscape_fit.best_lambda(observations)
    runs: dict[tuple[str, int, int], History] = {}
    for seed in range(1, args.seeds + 1):
        landscape = SurrogateLandscape.fitted(seed, observations, lam)
        for slots in args.slots:
            runs["parallel-greedy", slots, seed] = run_strategy(
                "parallel-greedy", landscape, slots, args.children, seed
            )
            for rate in args.rates:
                config = SimConfig(transplant_rate=rate)
                runs[str(rate), slots, seed] = run_strategy("evolve", landscape, slots, args.children, seed, config)
        print(f"transplant_ablation: landscape {seed}/{args.seeds} ({time.perf_counter() - started:.0f} s)", flush=True)
    rows = [_row(runs, args, str(rate), slots) for slots in args.slots for rate in args.rates]
    report = {
        "benchmark": "transplant_ablation",
        "machine": machine(),
        "commit": commit(),
        "command": "python -m benchmarks.transplant_ablation " + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": {"rates": args.rates, "slots": args.slots, "children": args.children, "seeds": args.seeds},
        "table": rows,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for line in table(rows):
        print(line)
    return 0


def _row(runs: dict, args, rate: str, slots: int) -> dict:
    seeds = range(1, args.seeds + 1)
    mine = [runs[rate, slots, s] for s in seeds]
    base = [runs[str(args.rates[0]), slots, s] for s in seeds]
    gains = [r.gain for r in mine]
    q1, _, q3 = statistics.quantiles(gains, n=4) if len(gains) > 1 else (gains[0],) * 3
    return {
        "slots": slots,
        "transplant_rate": float(rate),
        "median_gain": round(statistics.median(gains), 4),
        "iqr": [round(q1, 4), round(q3, 4)],
        "median_true_gain": round(statistics.median(r.true_gain for r in mine), 4),
        "win_rate_vs_rate_0": _wins(mine, base),
        "true_win_rate_vs_rate_0": _wins(mine, base, true=True),
        "mean_true_gain_minus_rate_0": round(
            statistics.fmean(a.true_gain - b.true_gain for a, b in zip(mine, base, strict=True)), 4
        ),
        "win_rate_vs_parallel_greedy": _wins(mine, [runs["parallel-greedy", slots, s] for s in seeds]),
        "median_transplants": statistics.median(r.operators.get("transplant", 0) for r in mine),
    }


def _wins(mine: list[History], others: list[History], true: bool = False) -> float:
    """Paired by landscape seed, on the confirmed gain (`true`: the noise-free gain); ties count half."""
    pairs = [(a.true_gain, b.true_gain) if true else (a.gain, b.gain) for a, b in zip(mine, others, strict=True)]
    return round(sum(1.0 if x > y else 0.5 if x == y else 0.0 for x, y in pairs) / len(pairs), 3)


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| slots | transplant rate | median gain (bpb) | IQR | win rate vs rate 0 (true gain) | true gain minus rate 0 "
        "| win rate vs parallel-greedy | transplants |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['slots']} | {r['transplant_rate']:g} | {r['median_gain']:.4f} | {r['iqr'][0]:.4f} to "
            f"{r['iqr'][1]:.4f} | {r['win_rate_vs_rate_0']:.2f} ({r['true_win_rate_vs_rate_0']:.2f}) "
            f"| {r['mean_true_gain_minus_rate_0']:+.4f} | {r['win_rate_vs_parallel_greedy']:.2f} "
            f"| {r['median_transplants']:g} |"
        )
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
