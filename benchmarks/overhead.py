"""Benchmark: where a child's non-training time goes, with a cold scorer and with a warm one.

Runs the real trainer (`trainer.run`: sandbox, child process, export, scorer process) on the seed genome.
Each repetition trains one child cold: a scorer started for it and closed after, the child started on
demand (as `evolve train` does); then one warm, as a run's trainer worker trains: with the scorer it keeps
warm and the standby child it keeps (trainer.Standby: started while the last warm child was scored, or
before the first, as a worker does at start). What a standby did before its go (interpreter, imports)
overlapped the last child's scoring, and that scoring's slowdown from sharing the machine with it is
measured in the last child's score phases. Overhead = total wall time of `trainer.run` minus the child's
training seconds (train.py's time on its clock, set-up and export included, by the trainer's measure),
split into the phases `trainer.run` reports (they sum to it). The trust checks that each child adds (its
cgroup made, read at every look of the watchdog and removed) are also timed on their own. The machine may be
shared, so the 1-minute load average is recorded before and after every child (and `--max-load` holds
each child back until the load is at most that); summaries are medians with min and max over the children
that finished ok. Overhead does not depend on the training budget, so `--budget` may shorten training.
Target: under 10 s on the `cpu` profile on the 2-core machine; the cgroup checks under 1 s.

    python -m benchmarks.overhead                          # cpu profile, 5 repetitions, benchmarks/results/
    python -m benchmarks.overhead --budget 20 --repeats 9 --max-load 2.5
    python -m benchmarks.overhead --profile smoke --budget 2 --repeats 1 --out /tmp/bench
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from benchmarks import commit, ready_scorer
from benchmarks.population_bench import machine
from experiments import profiles
from fitness import data
from fitness.profile import Profile
from fitness.result import RunResult
from trainer import Standby, TrainerConfig, cgroup, run, scorer_process, watch

SEED = Path(__file__).resolve().parents[1] / "trainer" / "seeds" / "train.py"
TARGET_S = 10.0
CHECKS_TARGET_S = 1.0
MODES = ("cold", "warm")


def wait_for_calm(max_load: float, poll_s: float = 5.0, give_up_s: float = 900.0) -> float:
    """On a shared machine: wait until the 1-minute load average is at most `max_load`; seconds waited."""
    started = time.perf_counter()
    while max_load > 0 and os.getloadavg()[0] > max_load and time.perf_counter() - started < give_up_s:
        time.sleep(poll_s)
    return time.perf_counter() - started


def measure_child(profile: Profile, config: TrainerConfig, mode: str, scorer, standby) -> dict:
    before = os.getloadavg()
    result = run(SEED.read_text(), profile, config=config, scorer=scorer, standby=standby)
    return record(mode, result, before, os.getloadavg())


def record(mode: str, result: RunResult, load_before: tuple, load_after: tuple) -> dict:
    return {
        "mode": mode,
        "status": result.status,
        "reason": result.reason,
        "total_s": result.total_seconds,
        "training_s": result.training_seconds,
        "overhead_s": result.overhead_seconds,
        "beyond_budget_s": result.total_seconds - result.budget_seconds,
        "num_steps": result.num_steps,
        "tokens": result.tokens,
        "phases": dict(result.phases),
        "load_before": list(load_before),
        "load_after": list(load_after),
    }


def time_checks(repeats: int = 20) -> dict:
    """Seconds the cgroup checks take: made and removed once per child, read at every look (WATCH_EVERY_S)."""
    made, read = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        group = cgroup.create(512)
        if group is None:
            return {"accounting": "proc (CGROUPS OFF)"}
        made.append(time.perf_counter() - t)
        t = time.perf_counter()
        group.usage()
        read.append(time.perf_counter() - t)
        t = time.perf_counter()
        group.remove()
        made[-1] += time.perf_counter() - t
    return {
        "accounting": "cgroup",
        "create_and_remove_s": statistics.median(made),
        "read_s": statistics.median(read),
        "reads_per_training_minute": 60 / watch.WATCH_EVERY_S,
    }


def bench(profile: Profile, repeats: int, threads: int, max_load: float = 0.0) -> dict:
    config = TrainerConfig(threads=threads, device="cpu")
    data.prepare(profile.dataset, profile.vocab_size, (profile.seq_len,), profile.num_shards)
    scorer, standby = scorer_process(threads), Standby()
    try:
        worker_start_s = ready_scorer(scorer, profile, threads, 120.0, "overhead")
        standby.fill(profile, config)
        runs = []
        for _ in range(repeats):  # interleaved, so a burst of load from neighbours hits both modes alike
            for mode in MODES:
                waited = wait_for_calm(max_load)
                kept = (scorer, standby) if mode == "warm" else (None, None)
                runs.append({**measure_child(profile, config, mode, *kept), "waited_s": waited})
    finally:
        standby.close()
        scorer.close()
    checks = time_checks()
    if "read_s" in checks:
        per_child = checks["create_and_remove_s"] + checks["read_s"] * 2 * (profile.hard_limit_s / watch.WATCH_EVERY_S)
        checks["per_child_s_at_most"] = per_child  # one create and remove, two reads a look for the hard limit
    return {"worker_scorer_start_s": worker_start_s, "checks": checks, "runs": runs, "summary": summarize(runs)}


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(runs: list[dict]) -> dict:
    """Per mode, over the children that finished ok (the others skipped scoring, so they would flatter it)."""
    summary = {}
    for mode in MODES:
        mine = [r for r in runs if r["mode"] == mode and r["status"] == "ok"]
        summary[mode] = {"children_ok": len(mine), "children": sum(r["mode"] == mode for r in runs)}
        if not mine:
            continue
        names = list(dict.fromkeys(name for r in mine for name in r["phases"]))
        summary[mode] |= {
            "overhead_s": spread([r["overhead_s"] for r in mine]),
            "beyond_budget_s": spread([r["beyond_budget_s"] for r in mine]),
            "load_1min": spread([x for r in mine for x in (r["load_before"][0], r["load_after"][0])]),
            "phases": {name: spread([r["phases"].get(name, 0.0) for r in mine]) for name in names},
        }
    return summary


# How each phase would change for a 300 s `h100` child. Only the host-side (FIXED) phases carry over as measured.
FIXED = {
    "prepare": "genome check and finding the token cache",
    "scorer_start": "a cold scorer's start-up (torch, export loader, rows); ~0 when warm",
    "child_start": "from the go to train.py's start: bubblewrap, the interpreter and imports (plus CUDA init on "
    "GPU, unmeasured) for a child started on demand; the spec and data only for a standby",
    "standby": "starting the next child's process (its start-up then overlaps scoring)",
    "score_other": "pipe round trip",
    "other": "sandbox directory, cgroup, log copy, clean-up",
}
SCALING = {
    "child_other": "the child's wall time beyond train.py's time on its clock: its exit, and on the CPU clock "
    "the wall time its threads were not all busy (single-threaded set-up and export); ~exit only on GPU",
    "score_load": "grows with weight bytes (graph load, copy to GPU)",
    "score_probe": "1 + causality_probes extra batch forwards (the unchanged batch is scored): GPU-bound",
    "score_eval": "forward passes over 2 x eval_tokens: GPU-bound",
}
FORWARD_PHASES = ("score_probe", "score_eval")


def on_h100(phase: str) -> str:
    if phase in FIXED:
        return f"same as measured: {FIXED[phase]}"
    return SCALING.get(phase, "not classified")


def forward_tokens(profile: Profile) -> int:
    """Tokens the scorer runs forward: val and test rows (padded to whole batches) plus the causality probe's
    forwards of one batch (fitness.scoring.check_causal: rows replaced, then `causality_probes` cuts; its
    unchanged batch is the first validation batch, scored once)."""
    batch_tokens = profile.eval_batch_size * profile.seq_len
    rows = -(-profile.eval_tokens // profile.seq_len)
    batches = -(-rows // profile.eval_batch_size)
    return (2 * batches + 1 + profile.causality_probes) * batch_tokens


def h100_implications(runs: list[dict], summary: dict, measured: Profile, h100: Profile) -> dict:
    warm = [r for r in runs if r["mode"] == "warm" and r["status"] == "ok"]
    if not warm:
        return {"error": "no child with a warm scorer finished ok"}
    phases = summary["warm"]["phases"]
    forward_s = statistics.median(sum(r["phases"].get(p, 0.0) for p in FORWARD_PHASES) for r in warm)
    scoring_tps = forward_tokens(measured) / forward_s
    training_tps = statistics.median(r["tokens"] / r["training_s"] for r in warm)
    ratio = scoring_tps / training_tps
    return {
        "assumptions": [
            "host-side phases (marked fixed) cost the same on the GPU machine's host as here",
            "scoring forwards run at the same multiple of training tokens/s on the GPU as measured here "
            "(unverified: training is torch.compile'd bf16 there, the exported graph runs uncompiled)",
        ],
        "phases": {p: {"measured_median_s": v["median"], "on_h100": on_h100(p)} for p, v in phases.items()},
        "fixed_phases_s": sum(v["median"] for p, v in phases.items() if p in FIXED),
        "forward_tokens": {measured.name: forward_tokens(measured), h100.name: forward_tokens(h100)},
        "measured_scoring_tokens_per_s": scoring_tps,
        "measured_training_tokens_per_s": training_tps,
        "scoring_to_training_speed": ratio,
        "h100_scoring_s": f"{forward_tokens(h100):,} / ({ratio:.2f} x h100 training tokens/s)",
    }


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2))
    summary = report["summary"]
    shown = [m for m in MODES if summary[m]["children_ok"]]
    names = list(dict.fromkeys(n for m in shown for n in summary[m]["phases"]))
    colors = plt.get_cmap("tab20").colors
    for y, mode in enumerate(shown):
        left, phases = 0.0, summary[mode]["phases"]
        for i, name in enumerate(names):
            width = phases.get(name, {}).get("median", 0.0)
            ax.barh(y, width, left=left, color=colors[i % 20], label=name if y == 0 else None)
            left += width
        total = summary[mode]["overhead_s"]
        ax.annotate(f" {total['median']:.1f} s ({total['min']:.1f}-{total['max']:.1f})", (left, y), va="center")
    ax.axvline(TARGET_S, color="grey", linestyle="--", label=f"target {TARGET_S:.0f} s")
    ax.set_yticks(range(len(shown)), [f"{m} scorer ({summary[m]['children_ok']} children)" for m in shown])
    ax.set_xlabel("seconds per child, median of each phase")
    ax.set_title(f"per-child overhead, {report['profile']['name']} profile, {report['machine']['cpu_count']} cores")
    ax.legend(fontsize=7, ncol=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=profiles.NAMES, default="cpu")
    parser.add_argument("--budget", type=float, help="training seconds (default: the profile's)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max-load", type=float, default=0.0, help="start a child only below this load average")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    profile = profiles.load(args.profile)
    profile = profile.with_budget(args.budget) if args.budget else profile
    measured = bench(profile, args.repeats, args.threads, args.max_load)
    report = {"benchmark": "overhead", "machine": {**machine(), "threads": args.threads}, "commit": commit()}
    report.update(profile=profile.to_dict(), target_s=TARGET_S, checks_target_s=CHECKS_TARGET_S)
    report["max_load"] = args.max_load
    report.update(
        measured, h100=h100_implications(measured["runs"], measured["summary"], profile, profiles.load("h100"))
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overhead.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / "overhead.png")
    print_summary(report)
    return report


def print_summary(report: dict) -> None:
    for mode in MODES:
        s = report["summary"][mode]
        if not s["children_ok"]:
            print(f"{mode} scorer: none of {s['children']} children finished ok")
            continue
        o, load = s["overhead_s"], s["load_1min"]
        print(
            f"{mode} scorer: overhead {o['median']:.1f} s (min {o['min']:.1f}, max {o['max']:.1f}), "
            f"load {load['min']:.1f}-{load['max']:.1f}"
        )
        print("  " + ", ".join(f"{n} {v['median']:.2f}" for n, v in s["phases"].items()))
    print(f"h100 scoring: {report['h100'].get('h100_scoring_s', report['h100'].get('error'))} s")
    print(
        "cgroup checks: "
        + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in report["checks"].items())
    )


if __name__ == "__main__":
    main()
