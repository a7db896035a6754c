"""Benchmark: does evolve hand back a better train.py than the searches a user would run instead?

Every method is benchmarks.simrun.run_strategy, the simulator's driver: the run's real policy and
strategies (evolve.policy, evolve.strategies), the offline operators' knob edits, and a discrete-event
clock over --slots virtual slots, so every decision is the one a run on that many GPUs makes. The
landscape is real (benchmarks.real_landscape): each genome is trained by the real trainer on one core
with a budget in CPU-seconds, its cost the CPU-seconds charged for everything (start-up, training,
scoring, failures). Evaluations are cached on disk by (train.py's sha1, training seed): a rerun resumes
evaluation by evaluation, and methods share the evaluations of identical genomes; mutation random
streams are shared per (search seed, proposal index), so methods differ only where their choices do.

Methods, each with the same total slot-time unless named otherwise (a run's budget is the wall clock
that children + noise evaluations of the seed take at full width, in units of the seed's own cost):
- evolve, parallel_greedy, independent_greedy, random: --slots slots, --children children;
- greedy: autoresearch's loop on one slot, for --slots times that wall clock (equal slot-time);
- greedy_equal_wall: the same loop for the same wall clock as the others (one slot busy of --slots).
Each run hands over its own pick (evolve: the noise-gated best; the others: their incumbent), retrained
at --confirm-seeds training seeds no search used (1000, 1001, ...); gain = the seed genome's mean there
minus the pick's. The simulator (benchmarks.simulate's surrogate landscapes) runs the same methods at the
same setting, and the report says whether the two rank the methods alike.

    python -m benchmarks.search --work /work/bench-cache     # 5 seeds x 6 methods, ~2 h on 2 cores
    python -m benchmarks.search --seeds 1 --slots 1 --children 1 --noise-repeats 1 --confirm-seeds 1 \\
        --budget 0.5 --out /tmp/s --work /tmp/s/work       # a tiny one (the test's)
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import multiprocessing.util
import os
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

from benchmarks import search_report
from benchmarks.simrun import SimConfig
from evolve.settings import DEFAULT_PRUNE, PRUNING
from experiments import profiles
from fitness.profile import Profile
from population.messages import PopulationConfig

SEED_GENOME = Path(__file__).resolve().parents[1] / "trainer" / "seeds" / "train.py"
METHODS = ("evolve", "greedy", "greedy_equal_wall", "parallel_greedy", "independent_greedy", "random")
STRATEGY = {"evolve": "evolve", "greedy": "greedy", "greedy_equal_wall": "greedy",
            "parallel_greedy": "parallel-greedy", "independent_greedy": "independent", "random": "random"}  # fmt: skip
# evolve with one or two of issue 16's changes undone (pairing, pruning, the confirmation's share, the
# selection: k=3 over the survivors, transplants): the real benchmark's half of the README's ablation.
# `evolve` itself runs a run's defaults (paired, pruning); the baselines run as a user would run them
# elsewhere, without pruning.
UNPAIRED = PopulationConfig(paired=False)  # averages over repeats at other seeds, with the noise gate
VARIANTS = {
    "evolve_no_pruning": {"pruning": None},
    "evolve_unpaired": {"population": UNPAIRED},
    "evolve_unpaired_no_pruning": {"population": UNPAIRED, "pruning": None},
    "evolve_unpaired_confirm_tenth": {"population": UNPAIRED, "confirm_share": 0.1},  # a tenth: the step before
    "evolve_no_confirmation": {"confirm_top": 0},
    "evolve_k3_survivors": {"population": PopulationConfig(parent_pool="survivors", tournament_share=0.0)},
    "evolve_no_transplants": {"transplant_rate": 0.0},  # merges stay; no best + another lineage's changes
    "evolve_before": {  # the selection before issue 16: k=3 over the survivors, no confirmation, no pruning
        "population": PopulationConfig(paired=False, parent_pool="survivors", tournament_share=0.0),
        "confirm_top": 0,
        "pruning": None,
    },
}
STRATEGY |= dict.fromkeys(VARIANTS, "evolve")


@dataclasses.dataclass(frozen=True)
class Setting:
    """What every run of the benchmark shares; a method's own slots and children come from `plan`."""

    profile: Profile
    slots: int
    children: int
    noise_repeats: int
    confirm_seeds: tuple[int, ...]
    cache: str


def plan(method: str, setting: Setting) -> tuple[str, int, int]:
    """(strategy, slots, children) of `method`: greedy gets one slot and as many children as fill the
    others' slot-time (their wall clock is ceil((children + noise) / slots) seed costs)."""
    if method == "greedy":
        rounds = math.ceil((setting.children + setting.noise_repeats) / setting.slots)
        return "greedy", 1, rounds * setting.slots - setting.noise_repeats
    return STRATEGY[method], setting.slots, setting.children


def config(method: str, setting: Setting) -> SimConfig:
    """What `method` runs with: evolve as a run's defaults (a variant with its one change), the rest as
    before issue 16's pruning."""
    pruning = PRUNING if STRATEGY[method] == "evolve" and DEFAULT_PRUNE else None
    base = SimConfig(noise_repeats=setting.noise_repeats, fresh_seeds=setting.confirm_seeds, pruning=pruning)
    return dataclasses.replace(base, **VARIANTS.get(method, {}))


def bench_profile(name: str, budget: float, eval_tokens: int | None) -> Profile:
    """`name` with a budget of `budget` CPU-seconds per child and one causality probe (the offline
    operators change only numeric knobs); `eval_tokens` scored if given."""
    profile = dataclasses.replace(profiles.load(name), causality_probes=1).with_budget(budget)
    return dataclasses.replace(profile, eval_tokens=eval_tokens) if eval_tokens else profile


_landscape = None  # a pool process's real landscape: its scorer stays warm from one job to the next


def landscape(setting: Setting, label: str):
    global _landscape
    from benchmarks.real_landscape import RealLandscape

    if _landscape is None:
        signal.signal(signal.SIGTERM, _interrupt)
        _landscape = RealLandscape(setting.profile, Path(setting.cache), label)
        multiprocessing.util.Finalize(None, _landscape.close, exitpriority=10)
    _landscape.evaluator.label = label
    return _landscape


def in_pool(fn, *args):
    """Runs `fn(*args)` in a pool process. Ctrl-C there (the SIGTERM the benchmark sends its pool when it is
    interrupted) ends the process once the trainer has stopped its child, rather than leaving the pool
    process free to start the next queued run."""
    try:
        return fn(*args)
    except KeyboardInterrupt:
        if _landscape is not None:
            _landscape.close()
        os._exit(130)


def prime(setting: Setting, training_seed: int) -> None:
    """The seed genome at `training_seed` (every run evaluates it: one process trains it, ahead of them)."""
    real = landscape(setting, "seed")
    real.row(real.seed_genome(), training_seed)


def job(method: str, seed: int, setting: Setting) -> dict:
    """One run of `method` at search seed `seed` on the real landscape (in a pool process)."""
    from benchmarks.simrun import run_strategy

    started = time.perf_counter()
    real = landscape(setting, f"{method}-{seed}")
    trained, reused = real.trained, real.reused
    strategy, slots, children = plan(method, setting)
    chosen = config(method, setting)
    real.curves = chosen.pruning is not None
    history = run_strategy(strategy, real, slots, children, seed, chosen)
    seed_genome = real.seed_genome()
    confirm = {
        name: [real.row(k, s)["val_bpb"] for s in setting.confirm_seeds]
        for name, k in (("seed", seed_genome), ("pick", history.pick_knobs))
    }  # fmt: skip
    changes = {k: v for k, v in history.pick_knobs.items() if v != seed_genome[k]}
    return {
        "method": method, "strategy": strategy, "seed": seed, "slots": slots, "children_target": children,
        "children": history.children, "evaluations": len(history.evaluations),
        "budget_seconds": history.budget_seconds, "pick": history.pick, "pick_changes": changes,
        "gain": _finite(history.gain), "confirm_val_bpb": confirm,
        "by_kind": {k: sum(e[1] == k for e in history.evaluations) for k in ("noise", "child", "repeat", "confirm")},
        "pruned": history.pruned, "false_prunes": history.false_prunes,
        "trained": real.trained - trained, "reused": real.reused - reused, "job_seconds": time.perf_counter() - started,
    }  # fmt: skip


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_all(args: argparse.Namespace, setting: Setting, simulated: dict) -> dict:
    """Every (seed, method) job not yet in `args.work`, --workers at a time; the report rewritten after each."""
    done_dir = args.work / "runs"
    done_dir.mkdir(parents=True, exist_ok=True)
    names = [(m, s) for s in range(args.seeds) for m in args.methods]
    runs = {n: json.loads(p.read_text()) for n in names if (p := done_dir / f"{n[0]}-{n[1]}.json").exists()}
    pool = ProcessPoolExecutor(args.workers, mp_context=get_context("spawn"))
    if len(runs) < len(names):
        for training_seed in (*range(setting.noise_repeats), *setting.confirm_seeds):
            pool.submit(in_pool, prime, setting, training_seed)
    futures = {pool.submit(in_pool, job, m, s, setting): (m, s) for m, s in names if (m, s) not in runs}
    try:
        while futures:
            finished, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in finished:
                name = futures.pop(future)
                runs[name] = future.result()
                (done_dir / f"{name[0]}-{name[1]}.json").write_text(json.dumps(runs[name], indent=1) + "\n")
                print(f"search: {name[0]} seed {name[1]} done ({len(runs)}/{len(names)} runs)", flush=True)
                write(args, setting, simulated, runs, len(names), plot=False)
    except BaseException:
        for child in multiprocessing.active_children():
            child.terminate()  # SIGTERM, which a pool process turns into Ctrl-C: its trainer child and scorer stop
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return write(args, setting, simulated, runs, len(names))


def write(args, setting: Setting, simulated: dict, runs: dict, total: int, plot: bool = True) -> dict:
    """search.json (after every run, so an unfinished benchmark shows how far it got) and its plot (at the end,
    or from a partial search.json with `python -m benchmarks.search_report PATH`)."""
    result = search_report.report(args, setting, simulated, list(runs.values()), total)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "search.json").write_text(json.dumps(result, indent=1) + "\n")
    if plot:
        search_report.plot(result, args.out / "search.png")
    return result


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.search", description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="smoke", choices=profiles.NAMES)
    p.add_argument("--budget", type=float, default=4.0, help="CPU-seconds of training per child")
    p.add_argument("--eval-tokens", type=int, default=None, help="validation tokens scored (the profile's)")
    p.add_argument("--slots", type=int, default=8, help="virtual slots (GPUs) of a run")
    p.add_argument("--children", type=int, default=61, help="children of a run at full width")
    p.add_argument("--seeds", type=int, default=5, help="search seeds")
    p.add_argument("--noise-repeats", type=int, default=3, help="evaluations of the seed genome in each run")
    p.add_argument("--confirm-seeds", type=int, default=3, help="fresh training seeds each pick is retrained at")
    p.add_argument(
        "--methods",
        nargs="+",
        choices=[*METHODS, *VARIANTS],
        default=list(METHODS),
        help=f"methods to run; evolve's ablation variants: {', '.join(VARIANTS)}",
    )
    p.add_argument("--landscapes", type=int, default=20, help="surrogate landscapes the simulator runs")
    p.add_argument("--workers", type=int, default=2, help="runs trained at a time (one core each)")
    p.add_argument("--work", type=Path, default=Path("runs/bench-search"), help="evaluations and finished runs")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    for name in ("slots", "children", "seeds", "noise_repeats", "confirm_seeds", "workers", "landscapes"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1: {getattr(args, name)}")
    if not args.budget > 0:
        p.error(f"--budget must be positive: {args.budget}")
    args.argv = argv if argv is not None else sys.argv[1:]
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the jobs too, not just this process
    confirm = tuple(1000 + i for i in range(args.confirm_seeds))
    profile = bench_profile(args.profile, args.budget, args.eval_tokens)
    setting = Setting(
        profile, args.slots, args.children, args.noise_repeats, confirm, str((args.work / "evaluations").resolve())
    )
    check_work(args, setting)
    started = time.perf_counter()
    simulated = simulate(args, setting)
    try:
        result = run_all(args, setting, simulated)
    except KeyboardInterrupt:
        print(f"search: interrupted; evaluations are kept in {str(args.work)!r}, a rerun resumes", file=sys.stderr)
        raise SystemExit(130) from None
    print(f"search: done in {time.perf_counter() - started:.0f} s", flush=True)
    for line in search_report.table(result):
        print(line)
    return result


def simulate(args: argparse.Namespace, setting: Setting) -> dict:
    """The simulator's figures at this setting, kept in the work directory for a rerun (same methods and
    landscapes) to reuse."""
    path, key = args.work / "simulated.json", {"methods": list(args.methods), "landscapes": args.landscapes}
    if path.exists() and (kept := json.loads(path.read_text()))["key"] == key:
        return kept["figures"]
    figures = search_report.simulate(args, setting, plan, config)
    path.write_text(json.dumps({"key": key, "figures": figures}, indent=1) + "\n")
    return figures


def check_work(args: argparse.Namespace, setting: Setting) -> None:
    """The work directory resumes only the benchmark that started it (same setting, same seed genome)."""
    args.work.mkdir(parents=True, exist_ok=True)
    path = args.work / "setting.json"
    seed = hashlib.sha1(SEED_GENOME.read_bytes()).hexdigest()
    mine = json.loads(json.dumps({**dataclasses.asdict(setting), "seed_genome_sha1": seed}))
    if path.exists() and json.loads(path.read_text()) != mine:
        raise SystemExit(f"search: {str(args.work)!r} holds a benchmark with another setting; pass another --work")
    path.write_text(json.dumps(mine, indent=1) + "\n")


if __name__ == "__main__":
    main()
