"""Benchmark: does a busy machine bend a score? The seed genome's training at a fixed seed, in pairs: once as
the machine is, then with a CPU hog (`while True: pass`) on every core, back to back.

Each evaluation is `python -m evolve train` (the real trainer: sandbox, child process, CPU-second clock,
scorer), with the child's threads as the run gives them (default 1 on a CPU). The trust issue's bound: with
a hog on every core the score moves by at most 0.05 val_bpb and keeps at least 80% of the quiet run's steps.
Reported per pair and as medians over pairs; the 1-minute load average is recorded before each evaluation,
since "as the machine is" is only quiet on a quiet machine. Each evaluation is kept in the work directory
as it finishes, so a rerun resumes.

    python -m benchmarks.hog                                 # 5 pairs, smoke profile, benchmarks/results/
    python -m benchmarks.hog --threads 2                     # the same with two-threaded children
    python -m benchmarks.hog --pairs 1 --out /tmp/hog
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import commit
from benchmarks.population_bench import machine

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "trainer" / "seeds" / "train.py"
MAX_SHIFT = 0.05  # val_bpb
MIN_STEPS = 0.8  # of the quiet run's
HOG = "while True: pass"


def train(profile: str, seed: int, threads: int) -> dict:
    """One `evolve train` of the seed genome: its summary block as a dict (status, val_bpb, num_steps, ...)."""
    command = [sys.executable, "-m", "evolve", "train", str(SEED), "--profile", profile, "--seed", str(seed)]
    done = subprocess.run([*command, "--threads", str(threads)], capture_output=True, text=True, cwd=REPO)
    fields = dict(line.split(":", 1) for line in done.stdout.splitlines() if ":" in line and not line.startswith(" "))
    summary = {k.strip(): v.strip() for k, v in fields.items()}
    return {
        "status": summary.get("status", f"exit {done.returncode}"),
        "val_bpb": float(summary["val_bpb"]) if "val_bpb" in summary else None,
        "num_steps": int(summary["num_steps"]) if "num_steps" in summary else None,
        "training_seconds": float(summary.get("training_seconds", "nan")),
        "total_seconds": float(summary.get("total_seconds", "nan")),
    }


def hogged(fn, *args) -> dict:
    """fn(*args) with one spinning process per core this process may use, stopped afterwards."""
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in os.sched_getaffinity(0)]
    try:
        return fn(*args)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def evaluation(work: Path, name: str, hog: bool, args: argparse.Namespace) -> dict:
    path = work / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text())
    load = os.getloadavg()[0]
    result = (hogged if hog else lambda fn, *a: fn(*a))(train, args.profile, args.seed, args.threads)
    result |= {"hog": hog, "load_before": load}
    path.write_text(json.dumps(result))
    return result


def summarize(pairs: list[tuple[dict, dict]]) -> dict:
    """Per pair: steps kept (hogged / quiet) and the score's shift; medians; how many pairs met both bounds."""
    rows = []
    for quiet, busy in pairs:
        if quiet["num_steps"] and busy["num_steps"] and quiet["val_bpb"] is not None and busy["val_bpb"] is not None:
            kept, shift = busy["num_steps"] / quiet["num_steps"], busy["val_bpb"] - quiet["val_bpb"]
            rows.append(
                {"steps_kept": kept, "val_bpb_shift": shift, "ok": kept >= MIN_STEPS and abs(shift) <= MAX_SHIFT}
            )
        else:
            rows.append({"steps_kept": None, "val_bpb_shift": None, "ok": False})
    scored = [r for r in rows if r["steps_kept"] is not None]
    return {
        "pairs": rows,
        "met": sum(r["ok"] for r in rows),
        "median_steps_kept": statistics.median(r["steps_kept"] for r in scored) if scored else None,
        "median_val_bpb_shift": statistics.median(r["val_bpb_shift"] for r in scored) if scored else None,
        "bounds": {"max_val_bpb_shift": MAX_SHIFT, "min_steps_kept": MIN_STEPS},
    }


def plot(pairs: list[tuple[dict, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (steps, score) = plt.subplots(1, 2, figsize=(10, 4))
    for i, (key, ax) in enumerate((("num_steps", steps), ("val_bpb", score))):
        ax.plot([q[key] for q, _ in pairs], "o-", label="as the machine is")
        ax.plot([b[key] for _, b in pairs], "s-", label="a CPU hog on every core")
        ax.set_xlabel("pair")
        ax.set_ylabel(key)
        if i == 0:
            ax.legend()
    fig.suptitle("seed genome, fixed seed: quiet vs hogged")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hog", description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--work", type=Path, help="where evaluations are kept for resuming (default: in $TMPDIR)")
    args = parser.parse_args(argv)
    key = f"{commit()[:12]}-{args.profile}-seed{args.seed}-t{args.threads}"  # a rerun on new code starts afresh
    work = args.work or Path(tempfile.gettempdir()) / f"evolve-hog-{key}"
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(args.pairs):
        pairs.append((evaluation(work, f"{i}-quiet", False, args), evaluation(work, f"{i}-hog", True, args)))
        print(f"pair {i}: quiet {pairs[-1][0]}  hogged {pairs[-1][1]}", flush=True)
    settings = {k: v for k, v in vars(args).items() if k in ("pairs", "profile", "seed", "threads")}
    report = {"benchmark": "hog", "commit": commit(), "machine": machine(), "settings": settings}
    report |= {"summary": summarize(pairs), "evaluations": [{"quiet": q, "hog": h} for q, h in pairs]}
    name = "hog" if args.threads == 1 else f"hog-threads{args.threads}"
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    plot(pairs, args.out / f"{name}.png")
    s = report["summary"]
    print(
        f"{s['met']}/{args.pairs} pairs within the bounds; median steps kept {s['median_steps_kept']:.2f}, "
        f"median val_bpb shift {s['median_val_bpb_shift']:+.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
