"""Benchmark: search efficiency at equal evaluations: evolve vs the seed project's greedy loop vs random search.

Every method starts from the seed genome, uses the offline operators and gets the same number of
evaluations per search seed (training runs of the real trainer: sandbox, child process, scorer):
- evolve: `evolve.session.Session` with 2 trainer workers of 1 core, population --population, stopped
  after N recorded evaluations; its noise evaluations of the seed and its repeats count against N;
- greedy: evaluate the seed, then N-1 hyperparam children of the incumbent, a child kept if it scores lower;
- random: evaluate the seed, then N-1 independent hyperparam mutants of the seed.
Children train at training seed 0 in every method (as evolve trains its children), so a genome's score is
its seed-0 val_bpb and best-so-far after k evaluations is the lowest seed-0 val_bpb among them (the seed's
own seed-0 score before the first): evaluations at other training seeds (evolve's noise and repeats) cost
an evaluation but cannot set a best. The noise level is the seed genome retrained at --noise-seeds
training seeds; each run's best is retrained at --confirm-seeds more seeds (outside the budget) to show
how much of its gain survives a new seed.

Budget: training tokens (Profile.budget_tokens), not seconds, so a busy shared machine changes how long
the benchmark takes but not what it measures; the time budget and the start-up allowance (which also bounds
scoring) stay as caps far above what a child needs, so load can slow a child but not cut it short.
The `cpu` profile otherwise, with fewer scored tokens and one causality probe (offline operators only
change numeric knobs) to make an evaluation cheaper.

    python -m benchmarks.search                 # 3 seeds x 24 evaluations x 3 methods, benchmarks/results/
    python -m benchmarks.search --profile smoke --tokens 1024 --evaluations 4 --seeds 1 --out /tmp/s
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import signal
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from benchmarks import commit
from benchmarks import search_methods as methods
from benchmarks.population_bench import machine
from experiments import profiles
from fitness.profile import Profile

METHODS = ("evolve", "greedy", "random")
GOAL = 1.5  # evolve's improvement over the seed / greedy's, at equal evaluations


def bench_profile(name: str, tokens: int, eval_tokens: int, cap_seconds: float) -> Profile:
    """`name` under a token budget; every time limit far out of reach, so that a child is never cut short,
    killed or its score dropped because the shared machine was busy (the scorer's timeout follows
    startup_allowance_s)."""
    return dataclasses.replace(
        profiles.load(name),
        budget_tokens=tokens,
        budget_seconds=cap_seconds,
        startup_allowance_s=cap_seconds,
        eval_tokens=eval_tokens,
        causality_probes=1,
    )


class Jobs:
    """Two single-core jobs at a time, each in a fresh process; results kept in `work` so a rerun resumes."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.pool = ProcessPoolExecutor(2, mp_context=get_context("spawn"), max_tasks_per_child=1)
        self.seconds: dict[str, float] = {}

    def run(self, named: dict[str, tuple]) -> dict[str, object]:
        """{name: (fn, *args)} in parallel; every result, loaded from `work` where a past run left it."""
        futures, results = {}, {}
        for name, (fn, *args) in named.items():
            path = self.work / f"{name}.json"
            if path.exists():
                results[name], self.seconds[name] = json.loads(path.read_text())
            else:
                futures[name] = self.pool.submit(methods.wall_clock, fn, *args)
        for name, future in futures.items():
            results[name], self.seconds[name] = future.result()
            (self.work / f"{name}.json").write_text(json.dumps([results[name], self.seconds[name]]))
            print(f"search: {name} done in {self.seconds[name]:.0f} s", flush=True)
        return results

    def close(self, interrupted: bool = False) -> None:
        """Waits for the pool; when the benchmark was interrupted, its jobs are stopped first (each as Ctrl-C
        stops it: an evolve job's Ray and trainers, a local search's scorer go down with it)."""
        if interrupted:
            for child in multiprocessing.active_children():
                child.terminate()  # SIGTERM, which wall_clock turns into Ctrl-C in the job
        self.pool.shutdown(cancel_futures=interrupted)


def bench(args: argparse.Namespace, profile: Profile) -> dict:
    jobs = Jobs(args.work)
    n, seeds = args.evaluations, list(range(args.seeds))
    try:
        halves = {f"noise-{i}": (methods.evaluate_seed, profile, args.noise_seeds[i::2]) for i in range(2)}
        noise = sorted((r for rs in jobs.run(halves).values() for r in rs), key=lambda r: r["training_seed"])
        runs: dict[str, list[dict]] = {m: [] for m in METHODS}
        for seed in seeds:
            pair = {f"{m}-{seed}": (methods.local_search, m, profile, seed, n) for m in ("greedy", "random")}
            for name, result in jobs.run(pair).items():
                runs[name.split("-")[0]].append(result)
            run_dir = args.work / f"evolve-{seed}"
            one = {f"evolve-{seed}": (methods.evolve, profile, seed, n, args.population, args.evolve_noise, run_dir)}
            runs["evolve"] += jobs.run(one).values()
        confirm = {
            f"confirm-{m}": (methods.evaluate_genomes, profile, [r["best_source"] for r in runs[m]], args.confirm_seeds)
            for m in METHODS
        }
        confirmed = jobs.run(confirm) if args.confirm_seeds else {}
    except BaseException:
        jobs.close(interrupted=True)
        raise
    jobs.close()
    return report(args, profile, noise, runs, confirmed, jobs.seconds)


def report(args, profile: Profile, noise: list[dict], runs: dict, confirmed: dict, seconds: dict) -> dict:
    values = [r["val_bpb"] for r in noise if r["status"] == "ok"]
    seed0 = next(r["val_bpb"] for r in noise if r["training_seed"] == 0)
    sigma = statistics.stdev(values) if len(values) > 1 else None
    out = {m: summarize(runs[m], seed0, sigma, confirmed.get(f"confirm-{m}", []), args) for m in METHODS}
    greedy, evolve = out["greedy"]["improvement"]["median"], out["evolve"]["improvement"]["median"]
    ratio = evolve / greedy if greedy > 0 else None
    settings = ("evaluations", "seeds", "population", "evolve_noise", "noise_seeds", "confirm_seeds", "tokens", "cap")
    return {
        "benchmark": "search",
        "machine": machine(),
        "commit": commit(),
        "command": " ".join(["python -m benchmarks.search", *args.argv]),
        "budget": f"{profile.budget_tokens} training tokens per evaluation, 1 thread; "
        f"wall-clock cap {profile.budget_seconds:g} s of training",
        "profile": profile.to_dict(),
        "settings": {k: getattr(args, k) for k in settings},
        "counting": " ".join(__doc__.split("\n\n")[1].split()),
        "noise": {
            "evaluations": noise,
            "val_bpb": values,
            "seed0_val_bpb": seed0,
            "sigma": sigma,
            "mean": statistics.fmean(values),
        },  # fmt: skip
        "methods": out,
        "ratio_evolve_over_greedy": ratio,
        "goal_ratio": GOAL,
        "goal_met": ratio is not None and ratio >= GOAL,
        "job_seconds": seconds,
    }


def summarize(runs: list[dict], seed0: float, sigma: float | None, confirmed: list[dict], args) -> dict:
    """Per seed: curve, improvement over the seed (in val_bpb and in sigma), the confirmation of the best."""
    per_seed, k = [], len(args.confirm_seeds)
    for i, result in enumerate(runs):
        curve, evaluations = best_so_far(result["evaluations"], seed0), result["evaluations"]
        mine = confirmed[i * k : (i + 1) * k]
        ok = [c["val_bpb"] for c in mine if c["status"] == "ok"]
        kinds = [e["kind"] for e in evaluations]
        per_seed.append({
            **{key: v for key, v in result.items() if key != "best_source"},
            "curve": curve, "best_val_bpb": curve[-1], "improvement": seed0 - curve[-1],
            "improvement_sigma": (seed0 - curve[-1]) / sigma if sigma else None,
            "by_kind": {kind: kinds.count(kind) for kind in sorted(set(kinds))},
            "failed": sum(e["status"] != "ok" for e in evaluations),
            "time_capped": sum(e["status"] == "ok" and e["tokens"] < args.tokens for e in evaluations),
            "confirm": {"evaluations": mine, "mean_val_bpb": statistics.fmean(ok) if ok else None},
        })  # fmt: skip
    gains = [r["improvement"] for r in per_seed]
    columns = list(zip(*(r["curve"] for r in per_seed), strict=True))
    return {
        "runs": per_seed,
        "improvement": {"median": statistics.median(gains), "min": min(gains), "max": max(gains), "per_seed": gains},
        "curve": {
            name: [fn(c) for c in columns] for name, fn in (("median", statistics.median), ("min", min), ("max", max))
        },
    }


def best_so_far(evaluations: list[dict], seed0: float) -> list[float]:
    """After each evaluation: the lowest seed-0 val_bpb so far, starting from the seed's."""
    best, curve = seed0, []
    for e in evaluations:
        if e["training_seed"] == 0 and e["status"] == "ok" and e["val_bpb"] is not None:
            best = min(best, e["val_bpb"])
        curve.append(best)
    return curve


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    noise = result["noise"]
    if noise["sigma"]:
        low, high = noise["mean"] - noise["sigma"], noise["mean"] + noise["sigma"]
        ax.axhspan(low, high, color="grey", alpha=0.2, label=f"seed genome: mean ± σ (σ = {noise['sigma']:.4f})")
    for method, color in zip(METHODS, ("tab:green", "tab:blue", "tab:orange"), strict=True):
        curve = result["methods"][method]["curve"]
        xs = range(1, len(curve["median"]) + 1)
        gain = result["methods"][method]["improvement"]["median"]
        ax.plot(xs, curve["median"], color=color, label=f"{method}: median (gain {gain:.4f})")
        ax.fill_between(xs, curve["min"], curve["max"], color=color, alpha=0.15)
    ratio = result["ratio_evolve_over_greedy"]
    title = f"best val_bpb vs evaluations, {result['settings']['seeds']} seeds (band: min–max)"
    ax.set_title(title + (f"\nevolve / greedy improvement: {ratio:.2f}" if ratio is not None else ""))
    ax.set(xlabel="evaluations", ylabel="best val_bpb so far (training seed 0)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", choices=profiles.NAMES)
    parser.add_argument("--tokens", type=int, default=49_152, help="training tokens per evaluation")
    parser.add_argument("--cap", type=float, default=900.0, help="wall-clock cap on training (and on start-up)")
    parser.add_argument("--eval-tokens", type=int, default=16_384, help="validation (and test) tokens scored")
    parser.add_argument("--evaluations", type=int, default=24, help="evaluations per method and seed")
    parser.add_argument("--seeds", type=int, default=3, help="search seeds per method")
    parser.add_argument("--population", type=int, default=4, help="evolve's --population")
    parser.add_argument("--evolve-noise", type=int, default=2, help="evolve's --noise-repeats")
    parser.add_argument("--noise-seeds", type=int, default=5, help="training seeds of the seed genome")
    parser.add_argument("--confirm-seeds", type=int, default=2, help="extra training seeds for each run's best")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-search"), help="job results and run dirs")
    args = parser.parse_args(argv)
    for name in ("tokens", "evaluations", "seeds", "population"):
        if getattr(args, name) < (2 if name in ("evaluations", "population") else 1):
            parser.error(f"--{name} is too small: {getattr(args, name)}")
    if args.noise_seeds < 2 or args.evolve_noise < 2:
        parser.error("--noise-seeds and --evolve-noise must be at least 2")
    args.noise_seeds = list(range(args.noise_seeds))
    args.confirm_seeds = list(range(1, 1 + args.confirm_seeds))
    args.argv = argv if argv is not None else sys.argv[1:]
    return args


def check_work(args: argparse.Namespace) -> None:
    """The work directory resumes only the benchmark that started it (same settings)."""
    args.work.mkdir(parents=True, exist_ok=True)
    path = args.work / "settings.json"
    mine = {k: str(v) for k, v in sorted(vars(args).items()) if k not in ("out", "argv")}
    if path.exists() and json.loads(path.read_text()) != mine:
        raise SystemExit(f"search: {str(args.work)!r} holds a benchmark with other settings; pass another --work")
    path.write_text(json.dumps(mine, indent=1) + "\n")


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    signal.signal(signal.SIGTERM, methods.interrupt)  # `kill` stops the jobs too, not just this process
    profile = bench_profile(args.profile, args.tokens, args.eval_tokens, args.cap)
    check_work(args)
    started = time.perf_counter()
    try:
        result = bench(args, profile)
    except KeyboardInterrupt:
        print(f"search: interrupted; finished jobs are kept in {str(args.work)!r}, a rerun resumes", file=sys.stderr)
        raise SystemExit(130) from None
    result["wall_seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "search.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result, args.out / "search.png")
    for method in METHODS:
        gain = result["methods"][method]["improvement"]
        spread = f"min {gain['min']:+.4f}, max {gain['max']:+.4f}"
        print(f"{method:>7}: improvement over the seed, median {gain['median']:+.4f} ({spread})")
    print(f"noise: sigma {result['noise']['sigma']}, evolve / greedy: {result['ratio_evolve_over_greedy']}")
    return result


if __name__ == "__main__":
    main()
