"""The search benchmark's figures: per-method gains, the paired bootstrap of evolve's ratio over the
strongest baseline and over greedy at equal wall-clock, the simulator's ranking at the same setting,
the table and the plot. Every figure is computed from the runs it reports.

    python -m benchmarks.search_report benchmarks/results/search.json    # its plot, search.png, again
"""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

from benchmarks import commit
from benchmarks.population_bench import machine

BASELINES = ("greedy", "parallel_greedy", "independent_greedy", "random")  # at equal slot-time
RESAMPLES = 10_000


def report(args, setting, simulated: dict, runs: list[dict], total: int) -> dict:
    by_method = {m: sorted((r for r in runs if r["method"] == m), key=lambda r: r["seed"]) for m in args.methods}
    methods = {m: summarize(rs, by_method.get("evolve", [])) for m, rs in by_method.items() if rs}
    medians = {m: s["median_gain"] for m, s in methods.items() if s["median_gain"] is not None}
    done = [m for m in BASELINES if m in medians]
    best = max(done, key=medians.get) if done else None
    real_rank = sorted(medians, key=medians.get, reverse=True)
    return {
        "benchmark": "search",
        "complete": len(runs) == total,
        "runs_done": len(runs),
        "runs_total": total,
        "machine": machine(),
        "commit": commit(),
        "command": " ".join(["python -m benchmarks.search", *args.argv]),
        "settings": {
            "budget_basis": "cpu_seconds",
            "budget_seconds": setting.profile.budget_seconds,
            "slots": setting.slots,
            "children": setting.children,
            "noise_repeats": setting.noise_repeats,
            "seeds": args.seeds,
            "confirm_seeds": list(setting.confirm_seeds),
            "methods": list(args.methods),
            "profile": setting.profile.to_dict(),
        },  # fmt: skip
        "methods": methods,
        "strongest_baseline": best,
        "ratio_vs_best_baseline": ratio(by_method.get("evolve", []), by_method.get(best, []), best),
        "ratio_vs_greedy_equal_wall": ratio(
            by_method.get("evolve", []), by_method.get("greedy_equal_wall", []), "greedy_equal_wall"
        ),  # fmt: skip
        "simulator": {**simulated, "agreement": agreement(real_rank, simulated["ranking"])},
        "compute": compute(runs, Path(setting.cache)),
    }


def gains(runs: list[dict]) -> dict[int, float]:
    """A run's gain by seed. A pick that failed at a confirmation seed has no gain: it is left out here and
    counted as a failed confirmation in its method's summary."""
    return {r["seed"]: r["gain"] for r in runs if r["gain"] is not None}


def summarize(runs: list[dict], evolve: list[dict]) -> dict:
    mine, theirs = gains(runs), gains(evolve)
    values = list(mine.values())
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else (values * 3 or [None] * 3)
    paired = [(theirs[s], g) for s, g in mine.items() if s in theirs]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in paired)
    return {
        "gains": values,
        "seeds": list(mine),
        "failed_confirmations": len(runs) - len(values),
        "median_gain": statistics.median(values) if values else None,
        "iqr": [q1, q3],
        "evolve_win_rate": wins / len(paired) if paired else None,  # evolve's gain above this method's, ties half
        "median_children": statistics.median(r["children"] for r in runs),
        "median_evaluations": statistics.median(r["evaluations"] for r in runs),
        "runs": runs,
    }


def ratio(evolve: list[dict], baseline: list[dict], name: str | None) -> dict:
    """median(evolve's gains) / median(baseline's) over the seeds both have, and its paired bootstrap 95% CI
    (seeds resampled with replacement, the same seeds for both). A resample whose baseline median is not
    positive has no ratio: it is left out of the CI and counted in `undefined_share`."""
    a, b = gains(evolve), gains(baseline)
    seeds = sorted(set(a) & set(b))
    out = {"baseline": name, "seeds": len(seeds), "median": None, "ci": [None, None], "undefined_share": None}
    if not seeds or name is None:
        return out
    out["median"] = _ratio([a[s] for s in seeds], [b[s] for s in seeds])
    rng, samples = random.Random(0), []
    for _ in range(RESAMPLES):
        pick = rng.choices(seeds, k=len(seeds))
        samples.append(_ratio([a[s] for s in pick], [b[s] for s in pick]))
    defined = sorted(x for x in samples if x is not None)
    out["undefined_share"] = 1 - len(defined) / RESAMPLES
    if defined:
        out["ci"] = [defined[int(0.025 * len(defined))], defined[min(len(defined) - 1, int(0.975 * len(defined)))]]
    return out


def _ratio(a: list[float], b: list[float]) -> float | None:
    den = statistics.median(b)
    return statistics.median(a) / den if den > 0 else None


def agreement(real: list[str], simulated: list[str]) -> dict:
    """Whether the real benchmark and the simulator order the methods alike (over the methods both have)."""
    common = [m for m in real if m in simulated]
    sim = [m for m in simulated if m in common]
    pairs = [(i, j) for i in range(len(common)) for j in range(i + 1, len(common))]
    concordant = sum(sim.index(common[i]) < sim.index(common[j]) for i, j in pairs)
    return {
        "real_ranking": common,
        "simulated_ranking": sim,
        "same_order": common == sim,
        "same_best": bool(common) and common[0] == sim[0],
        "kendall_tau": (2 * concordant - len(pairs)) / len(pairs) if pairs else None,
    }


def compute(runs: list[dict], cache: Path) -> dict:
    """What the benchmark trained (its cache: every evaluation of every run, once) and what the runs reused."""
    rows = [json.loads(p.read_text()) for p in cache.glob("*-*.json")]
    return {
        "evaluations": len(rows),
        "cpu_seconds": sum(r["cost_seconds"] for r in rows),
        "training_cpu_seconds": sum(r["training_seconds"] or 0.0 for r in rows),  # the rest is overhead
        "median_cost_seconds": statistics.median(r["cost_seconds"] for r in rows) if rows else None,
        "failed_evaluations": sum(r["status"] != "ok" for r in rows),
        "evaluations_trained_by_runs": sum(r["trained"] for r in runs),
        "evaluations_reused_by_runs": sum(r["reused"] for r in runs),
        "job_seconds": sum(r["job_seconds"] for r in runs),
    }


def simulate(args, setting, plan, config) -> dict:
    """The same methods at the same setting (slots, children, noise evaluations, confirmation seeds) on
    `args.landscapes` surrogate landscapes (benchmarks.simulate's): median gain by method and its ranking."""
    from benchmarks import landscape_data, landscape_fit
    from benchmarks.landscape import SurrogateLandscape
    from benchmarks.simrun import run_strategy

    observations = landscape_data.load()
    lam = landscape_fit.best_lambda(observations)[0]
    found: dict[str, list[float]] = {m: [] for m in args.methods}
    for seed in range(1, args.landscapes + 1):
        landscape = SurrogateLandscape.fitted(seed, observations, lam)
        for method in args.methods:
            strategy, slots, children = plan(method, setting)
            found[method].append(run_strategy(strategy, landscape, slots, children, seed, config(method, setting)).gain)
    medians = {m: statistics.median(g) for m, g in found.items()}
    return {
        "landscapes": args.landscapes,
        "landscape": "benchmarks.landscape.SurrogateLandscape (cpu profile's knobs and 10 s budget)",
        "median_gain": medians,
        "ranking": sorted(medians, key=medians.get, reverse=True),
    }


def table(result: dict) -> list[str]:
    lines = [
        f"runs {result['runs_done']}/{result['runs_total']}",
        "| method | median gain (bpb) | IQR | evolve's win rate | children | simulated median gain |",
        "|---|---|---|---|---|---|",
    ]
    sim = result["simulator"]["median_gain"]
    for m, s in result["methods"].items():
        med, (q1, q3), win = s["median_gain"], s["iqr"], s["evolve_win_rate"]
        cells = [_f(med), f"{_f(q1)} to {_f(q3)}", "-" if m == "evolve" or win is None else f"{win:.2f}"]
        lines.append(f"| {m} | {' | '.join(cells)} | {s['median_children']:g} | {_f(sim.get(m))} |")
    for key in ("ratio_vs_best_baseline", "ratio_vs_greedy_equal_wall"):
        r = result[key]
        lines.append(f"{key}: {r['baseline']} {_f(r['median'])} (95% CI {_f(r['ci'][0])} to {_f(r['ci'][1])})")
    lines.append(f"rankings agree: {result['simulator']['agreement']}")
    return lines


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2))
    names = list(result["methods"])
    for i, m in enumerate(names):
        s = result["methods"][m]
        ax.scatter([i] * len(s["gains"]), s["gains"], color="tab:blue", alpha=0.6, s=18)
        if s["median_gain"] is not None:
            ax.hlines(s["median_gain"], i - 0.3, i + 0.3, color="tab:blue")
        sim = result["simulator"]["median_gain"].get(m)
        ax.hlines(sim, i - 0.3, i + 0.3, color="tab:orange", linestyles="dashed")
    ax.plot([], [], color="tab:blue", label="real: gain per search seed, median")
    ax.plot([], [], color="tab:orange", linestyle="dashed", label="simulator: median over landscapes")
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    r = result["ratio_vs_best_baseline"]
    ax.set_title(f"gain of each method's pick over the seed genome, {result['settings']['slots']} slots "
                 f"({result['runs_done']}/{result['runs_total']} runs)\nevolve / {r['baseline']}: {_f(r['median'])}"
                 f" (95% CI {_f(r['ci'][0])} to {_f(r['ci'][1])})", fontsize=9)  # fmt: skip
    ax.set_ylabel("val_bpb gain at fresh seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    import sys

    path = Path(sys.argv[1])
    plot(json.loads(path.read_text()), path.with_suffix(".png"))
