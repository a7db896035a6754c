"""Benchmark: every strategy at cluster width on surrogate landscapes, with the run's own policy code.

Each landscape seed is one plausible landscape (benchmarks.landscape: the model fitted to our real
evaluations, refitted on a bootstrap resample, with random extra interactions). On each, every strategy
runs at each width with the same budget: 800 children, or the wall clock 800 children and the noise
evaluations take at full width (greedy, one child at a time, gets that wall clock: autoresearch's loop on
the same night). Each run hands over its own pick (evolve: the noise-gated best; the others: their
incumbent), confirmed at three fresh training seeds: gain = the seed genome's mean there minus the pick's.
Reported per width and strategy: median gain, IQR, and the win rate against parallel greedy (ties count
half) over the landscape seeds; also the fit's held-out rank correlation.

    python -m benchmarks.simulate                 # 16 and 64 slots, 800 children, 20 landscapes: ~5 min
    python -m benchmarks.simulate --quick --out /tmp/sim.json
    python -m benchmarks.simulate --prune off on --out benchmarks/results/prune.json   # the pruning ablation

Evolve compares children by paired scores (seed-0 evaluations only, no repeats mid-run, no noise gate),
as a run does by default; with `--paired on off` it also runs with averages over repeats and the noise
gate, reported as `evolve+unpaired`. A strategy's win rate is against parallel greedy at the same pruning.

With `--prune on`, children are pruned (evolve.policy.Limits.pruning, thresholds --prune-at and
--prune-margin) and the strategy is reported as e.g. `evolve+prune`, with the share of children pruned and
of false prunes (pruned children that would have been the lowest seed-0 score so far).
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
from benchmarks.simrun import FRESH_SEEDS, History, SimConfig, run_strategy
from evolve.strategies import STRATEGIES
from fitness.curves import PruneRule
from population.messages import PopulationConfig

RESULTS = Path(__file__).resolve().parent / "results"
PRUNE = PruneRule(())  # --prune's default thresholds: the run's (fitness.curves.PruneRule)
REFERENCE = "parallel-greedy"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.quick:
        args.slots, args.children, args.seeds = [8], 60, 2
    started = time.perf_counter()
    observations = landscape_data.load()
    lam, quality = landscape_fit.best_lambda(observations)
    print(f"simulate: landscape fit, held-out Spearman {quality['spearman_pooled']} (ridge lambda {lam})", flush=True)
    runs: list[History] = []
    for seed in range(1, args.seeds + 1):
        landscape = SurrogateLandscape.fitted(seed, observations, lam)
        for slots in args.slots:
            for strategy in args.strategies:
                runs.extend(_runs(args, strategy, landscape, slots, seed))
        print(f"simulate: landscape {seed}/{args.seeds} done ({time.perf_counter() - started:.0f} s)", flush=True)
    report = _report(args, runs, quality, time.perf_counter() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    _plot(report, runs, args.out.with_suffix(".png"))
    for line in table(report):
        print(line)
    if "on" in args.prune:
        for line in prune_table(report):
            print(line)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.simulate", description=__doc__.split("\n")[0])
    p.add_argument("--slots", type=int, nargs="+", default=[16, 64])
    p.add_argument("--children", type=int, default=800)
    p.add_argument("--seeds", type=int, default=20, help="landscape seeds")
    p.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    p.add_argument("--quick", action="store_true", help="8 slots, 60 children, 2 landscapes (tests)")
    p.add_argument("--out", type=Path, default=RESULTS / "simulate.json")
    p.add_argument("--prune", nargs="+", choices=("off", "on"), default=["off"], help="without and/or with pruning")
    p.add_argument("--prune-at", type=float, nargs="+", default=[PRUNE.at], help="fractions of the budget")
    p.add_argument("--prune-margin", type=float, nargs="+", default=[PRUNE.margin], help="nats behind the parent")
    p.add_argument(
        "--paired", nargs="+", choices=("on", "off"), default=["on"],
        help="evolve's scores: seed-0 scores only (on, a run's default) and/or averages with repeats and the "
        "noise gate (off, reported as evolve+unpaired)",
    )  # fmt: skip
    return p


def _rules(args) -> dict[str, PruneRule | None]:
    """Each --prune setting by its label's suffix: "" (off), "+prune", or "+prune AT/MARGIN" for a sweep."""
    rules = {"": None} if "off" in args.prune else {}
    if "on" in args.prune:
        pairs = [(at, margin) for at in args.prune_at for margin in args.prune_margin]
        for at, margin in pairs:
            rules["+prune" if len(pairs) == 1 else f"+prune {at:g}/{margin:g}"] = PruneRule((), at, margin)
    return rules


def _configs(args, strategy: str) -> dict[str, SimConfig]:
    """`strategy`'s runs by label: one per --prune setting (see _rules) and, for evolve, per --paired
    setting ("+unpaired": averages over repeats at other seeds, with the noise gate). The greedy baselines
    keep their own incumbents by seed-0 score (evolve.strategies.Greedy) either way."""
    pairings = {"": True} if "on" in args.paired or strategy != "evolve" else {}
    if strategy == "evolve" and "off" in args.paired:
        pairings["+unpaired"] = False
    return {
        strategy + paired_suffix + suffix: SimConfig(pruning=rule, population=PopulationConfig(paired=paired))
        for suffix, rule in _rules(args).items()
        for paired_suffix, paired in pairings.items()
    }


def _runs(args, strategy: str, landscape, slots: int, seed: int) -> list[History]:
    """One run per configuration of `strategy` (see _configs), labelled with it."""
    runs = []
    for label, config in _configs(args, strategy).items():
        run = run_strategy(strategy, landscape, slots, args.children, seed, config)
        run.strategy = label
        runs.append(run)
    return runs


def summarize(runs: list[History], slots: int, strategy: str) -> dict:
    mine = {r.seed: r for r in runs if r.slots == slots and r.strategy == strategy}
    against = REFERENCE + (strategy[strategy.index("+prune") :] if "+prune" in strategy else "")
    if not any(r.strategy == against for r in runs):
        against = REFERENCE
    reference = {r.seed: r for r in runs if r.slots == slots and r.strategy == against}  # same pruning if run
    gains = [r.gain for r in mine.values()]
    q1, _, q3 = statistics.quantiles(gains, n=4) if len(gains) > 1 else (gains[0],) * 3
    paired = [(r.gain, reference[s].gain) for s, r in mine.items() if s in reference]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in paired)
    return {
        "slots": slots,
        "strategy": strategy,
        "median_gain": round(statistics.median(gains), 4),
        "iqr": [round(q1, 4), round(q3, 4)],
        "win_rate_vs_parallel_greedy": round(wins / len(paired), 3) if paired and strategy != against else None,
        "median_true_gain": round(statistics.median(r.true_gain for r in mine.values()), 4),
        "median_children": statistics.median(r.children for r in mine.values()),
        "median_evaluations": statistics.median(len(r.evaluations) for r in mine.values()),
        "pruned_share": round(sum(r.pruned for r in mine.values()) / max(1, sum(r.children for r in mine.values())), 3),
        "pruned": sum(r.pruned for r in mine.values()),
        "false_prunes": sum(r.false_prunes for r in mine.values()),
        "landscapes": len(gains),
    }


def _report(args, runs: list[History], quality: dict, seconds: float) -> dict:
    labels = [label for s in args.strategies for label in _configs(args, s)]
    rows = [summarize(runs, slots, s) for slots in args.slots for s in labels]
    return {
        "benchmark": "simulate",
        "machine": machine(),
        "commit": commit(),
        "command": "python -m benchmarks.simulate " + " ".join(sys.argv[1:]),
        "settings": {
            "slots": args.slots,
            "children": args.children,
            "landscape_seeds": args.seeds,
            "strategies": labels,
            "confirm_seeds": list(FRESH_SEEDS),
            "prune": {"at": args.prune_at, "margin": args.prune_margin, "window": PRUNE.window}
            if "on" in args.prune
            else None,
            "paired": args.paired,
        },  # fmt: skip
        "landscape": "benchmarks.landscape.SurrogateLandscape (cpu profile, 10 s time budget per child)",
        "fit_quality": quality,
        "time_budget_check": _time_budget_check(),
        "table": rows,
        "runs": [
            {
                "strategy": r.strategy,
                "slots": r.slots,
                "seed": r.seed,
                "gain": round(r.gain, 5),
                "true_gain": round(r.true_gain, 5),
                "children": r.children,
                "evaluations": len(r.evaluations),
            }
            for r in runs
        ],  # fmt: skip
        "wall_seconds": round(seconds, 1),
    }


def _time_budget_check() -> dict | None:
    """benchmarks.landscape_check's rank correlation with real children under the time budget, if run."""
    path = RESULTS / "landscape_check.json"
    if not path.exists():
        return None
    check = json.loads(path.read_text())
    return {k: check[k] for k in ("spearman", "ok", "genomes", "commit", "command")}


def table(report: dict) -> list[str]:
    lines = [
        "| slots | strategy | median gain (bpb) | IQR | win rate vs parallel-greedy (same pruning) | children |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["table"]:
        rate = r["win_rate_vs_parallel_greedy"]
        win = "-" if rate is None else f"{rate:.2f}"
        lines.append(
            f"| {r['slots']} | {r['strategy']} | {r['median_gain']:.4f} | {r['iqr'][0]:.4f} to {r['iqr'][1]:.4f} "
            f"| {win} | {r['median_children']:g} |"
        )
    return lines


def prune_table(report: dict) -> list[str]:
    """Per width, each pruned setting against the same strategy unpruned: gain, children, pruned, false prunes."""
    rows = {(r["slots"], r["strategy"]): r for r in report["table"]}
    lines = [
        "| slots | strategy | median gain (bpb) | unpruned | win rate vs unpruned | children | pruned | false prunes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (slots, label), r in rows.items():
        base = rows.get((slots, label.split("+prune")[0]))
        if "+prune" not in label or base is None:
            continue
        mine = {x["seed"]: x["gain"] for x in report["runs"] if x["slots"] == slots and x["strategy"] == label}
        theirs = {
            x["seed"]: x["gain"] for x in report["runs"] if x["slots"] == slots and x["strategy"] == base["strategy"]
        }
        wins = sum(1.0 if mine[s] > theirs[s] else 0.5 if mine[s] == theirs[s] else 0.0 for s in mine)
        lines.append(
            f"| {slots} | {label} | {r['median_gain']:.4f} | {base['median_gain']:.4f} | {wins / len(mine):.2f} "
            f"| {r['median_children']:g} | {r['pruned_share']:.0%} | {r['false_prunes']} of {r['pruned']} |"
        )
    return lines


def _plot(report: dict, runs: list[History], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = report["settings"]["slots"]
    fig, axes = plt.subplots(1, len(widths), figsize=(6 * len(widths), 4), squeeze=False)
    for ax, slots in zip(axes[0], widths, strict=True):
        for strategy in report["settings"]["strategies"]:
            mine = [r.curve for r in runs if r.slots == slots and r.strategy == strategy and r.curve]
            n = min(len(c) for c in mine) if mine else 0
            if n:
                xs = [mine[0][i][0] / 3600 for i in range(n)]
                ax.plot(xs, [statistics.median(c[i][1] for c in mine) for i in range(n)], label=strategy)
        ax.set(title=f"{slots} slots", xlabel="wall clock (hours)", ylabel="median true gain of the pick (bpb)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    raise SystemExit(main())
