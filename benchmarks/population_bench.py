"""Micro-benchmark: what the genome store and the archive cost per child, up to 10,000 children.

Each child is one `Population.add` (a git commit; every fifth a two-parent merge) plus one
`Population.record` (an atomic Parquet segment, with compaction). Reported per window between
checkpoints (10/100/1,000/5,000/10,000 cumulative children): mean and p95 milliseconds per child,
split into git and archive, plus the time to reopen (resume) the run at the end. Target: < 50 ms.

    python -m benchmarks.population_bench                  # 10,000 children, writes benchmarks/results/
    python -m benchmarks.population_bench --children 50 --out /tmp/bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from fitness.result import RunResult
from population import Population, PopulationConfig

SEED = Path(__file__).resolve().parents[1] / "trainer" / "seeds" / "train.py"
CHECKPOINTS = (10, 100, 1_000, 5_000, 10_000)
TARGET_MS = 50.0


def child_source(seed: str, i: int, rng: random.Random) -> str:
    """A realistic, unique train.py: the seed with a knob changed and a note appended."""
    lr = round(rng.uniform(0.005, 0.05), 5)
    return seed.replace("MATRIX_LR = 0.02 ", f"MATRIX_LR = {lr} ") + f"# child {i}\n"


def bench(children: int, run_dir: Path) -> dict:
    seed, rng = SEED.read_text(), random.Random(0)
    points = [c for c in CHECKPOINTS if c < children] + [children]
    windows, git_ms, archive_ms = [], [], []
    with Population.open(run_dir, seed, PopulationConfig()) as pop:
        ids = [pop.seed().id]
        for i in range(1, children + 1):
            parents = rng.sample(ids, 2) if i % 5 == 0 and len(ids) > 1 else [rng.choice(ids)]
            t0 = time.perf_counter()
            child, _ = pop.add(child_source(seed, i, rng), parents, "mutate", f"child {i}", i // 16)
            t1 = time.perf_counter()
            result = RunResult("ok", val_bpb=1.0 + rng.gauss(0, 0.01), peak_memory_mb=40_000.0, device="bench")
            pop.record(child.id, result, generation=i // 16, started="s", finished="f")
            t2 = time.perf_counter()
            ids.append(child.id)
            git_ms.append((t1 - t0) * 1e3)
            archive_ms.append((t2 - t1) * 1e3)
            if i in points:
                windows.append(_window(i, git_ms, archive_ms))
                git_ms, archive_ms = [], []
    t0 = time.perf_counter()
    with Population.open(run_dir, None, PopulationConfig()) as pop:
        assert len(pop.archive()) == children
    return {"children": children, "windows": windows, "reopen_s": round(time.perf_counter() - t0, 3)}


def _window(children: int, git_ms: list[float], archive_ms: list[float]) -> dict:
    total = [g + a for g, a in zip(git_ms, archive_ms, strict=True)]
    return {
        "children": children,
        "git_ms": round(statistics.fmean(git_ms), 3),
        "archive_ms": round(statistics.fmean(archive_ms), 3),
        "total_ms": round(statistics.fmean(total), 3),
        "p95_total_ms": round(sorted(total)[int(0.95 * (len(total) - 1))], 3),
    }


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [w["children"] for w in report["windows"]]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, label in (("git_ms", "git commit"), ("archive_ms", "archive append"), ("total_ms", "total")):
        ax.plot(xs, [w[key] for w in report["windows"]], marker="o", label=label)
    ax.axhline(TARGET_MS, color="grey", linestyle="--", label=f"target {TARGET_MS:.0f} ms")
    ax.set(xscale="log", xlabel="cumulative children", ylabel="ms per child (window mean)")
    ax.set_title("population: store + archive cost per child")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    if args.children < 1:
        parser.error(f"--children must be at least 1, got {args.children}")
    with tempfile.TemporaryDirectory() as tmp:
        report = {"machine": machine(), "target_ms": TARGET_MS, **bench(args.children, Path(tmp) / "run")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "population.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / "population.png")
    for w in report["windows"]:
        parts = f"git {w['git_ms']:.2f}, archive {w['archive_ms']:.2f}"
        print(f"{w['children']:>6} children: {w['total_ms']:7.2f} ms/child ({parts})")
    print(f"reopen: {report['reopen_s']:.2f} s")
    return report


if __name__ == "__main__":
    main()
