"""Benchmark: the scheduler at scale, simulated: 8, 64 and 256 GPUs declared to a private local Ray.

The real run (evolve.session.Session: PopulationActor with its git store and Parquet archive, Proposer,
Orchestrator, progress lines) with one HoldWorker actor per declared GPU, which holds its GPU for a set
time per child and trains nothing, and NoOpMutators, which answer at once (benchmarks/scheduler_fakes.py).
Each run goes through three phases, steered by the hold time the workers read:
- start-up: children hold 1 s until every slot has started one (actor processes start one by one);
- saturated: children hold 0 s, so the driver is the bottleneck: its cost per child (propose + commit +
  record + the Ray round trips) = the mean interval between successive child starts;
- held: children hold 2 x GPUs x that cost (at least 2 s, at most 300 s: then the held phase is the real
  case), so the driver keeps up with margin as it must for 300-s children, until every slot has held
  enough children for --gaps gaps in all. Per child, the slot's idle gap: from the end of one held child
  to the start of the next on the same slot; utilisation: slot time held / slot time from each slot's
  first held start to its last held end.
Then the run is stopped as Ctrl-C stops it. Utilisation with children of T = 300 s (an h100 child): measured
where the held phase held 300 s; else extrapolated: T / (T + g), g the mean idle gap per child, while
the driver keeps up (GPUs x cost < T); beyond that the driver's pace caps it at T / (GPUs x cost).
The 1-minute load average before and after each size is recorded: on a shared machine the gaps and the
cost come out longer, so they are upper bounds.
All the simulated workers are processes on this machine (on a cluster they live on their GPU nodes): the
cores they take while idle are measured too, since many of them compete with the driver for the cores.
An idle Ray worker process takes about 90 MB (measured: MemAvailable drop per actor), so 256 of them
need more than a 24 GiB machine has: free swap counts as memory here (an idle worker's pages are cold),
the swap in use at each size's start and at its peak is recorded, and a size that fits in neither is
skipped (recorded as such), not run. Swapping can only lengthen the gaps: the figures stay upper bounds.

    python -m benchmarks.scheduler                        # 8, 64, 256 GPUs; benchmarks/results/
    python -m benchmarks.scheduler --gpus 8 --gaps 8 --saturated-children 20 --out /tmp/sched
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import signal
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from benchmarks import commit
from benchmarks.population_bench import machine
from benchmarks.scheduler_fakes import NoOpMutators, hold_worker

CHILD_SECONDS = 300.0  # what an h100 child holds its GPU for
TARGET = 0.99
STARTUP_HOLD = 1.0  # while slots come up, so the first ones don't spin through children
WORKER_MB, BASE_MB = 100, 1500  # memory of one idle Ray actor process (measured: ~90 MB), of Ray and the driver


class Phases:
    """Runs in a thread beside the session: reads the workers' spans, writes the hold file, stops the run."""

    def __init__(self, spans: Path, gpus: int, quick: int, gaps: int, min_hold: float) -> None:
        self.spans, self.gpus, self.quick, self.min_hold = spans, gpus, quick, min(min_hold, CHILD_SECONDS)
        self.waves = 1 + math.ceil(gaps / gpus)  # held children per slot: waves - 1 gaps each
        self.marks: dict[str, float] = {}  # when each phase began (wall clock, as the spans)
        self.worker_cpu: list[tuple[float, float]] = []  # (time, the workers' CPU seconds) at two points
        self.swap_mb = [swap_used_mb()] * 2  # swap in use: at the start, and the most while the run went on
        self._enter("startup", STARTUP_HOLD)

    def watch(self, done: threading.Event) -> None:
        while not done.wait(0.25):
            self.swap_mb[1] = max(self.swap_mb[1], swap_used_mb())
            if self.step(read_spans(self.spans)):
                self.worker_cpu.append((time.time(), workers_cpu(self.spans)))
                os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: in-flight children are recorded as interrupted
                return

    def step(self, spans: list[dict]) -> bool:
        """Advance the phase; True once the held phase has what it needs."""
        if self.phase == "startup" and len({s["worker"] for s in spans}) == self.gpus:
            self.worker_cpu.append((time.time(), workers_cpu(self.spans)))
            self._enter("saturated", 0.0)
        elif self.phase == "saturated":
            quick = saturated(spans, self.marks["saturated"])
            if len(quick) >= self.quick:
                hold = min(CHILD_SECONDS, max(self.min_hold, round(2 * self.gpus * driver_cost(quick), 2)))
                self._enter("held", hold)
        elif self.phase == "held":
            per_slot = Counter(s["worker"] for s in held(spans, self.marks["held"], self.hold))
            return len(per_slot) == self.gpus and min(per_slot.values()) >= self.waves
        return False

    def _enter(self, phase: str, hold: float) -> None:
        self.phase, self.hold, self.marks[phase] = phase, hold, time.time()
        path = self.spans / "hold"
        path.with_suffix(".tmp").write_text(repr(hold))
        path.with_suffix(".tmp").replace(path)  # atomic: a worker reads the old hold or the new one


def read_spans(spans: Path) -> list[dict]:
    rows = []
    for path in spans.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):  # a line being written
                rows.append(json.loads(line))
    return sorted(rows, key=lambda r: r["start"])


def workers_cpu(spans: Path) -> float:
    """CPU seconds used so far by the worker processes (each names its spans file after its pid); Linux."""
    ticks = 0
    for path in spans.glob("*.jsonl"):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{path.stem}/stat").read_text().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def saturated(spans: list[dict], mark: float) -> list[dict]:
    return [s for s in spans if s["start"] >= mark and s["hold"] == 0.0]


def held(spans: list[dict], mark: float, hold: float) -> list[dict]:
    return [s for s in spans if s["start"] >= mark and s["hold"] == hold]


def driver_cost(spans: list[dict]) -> float:
    """Mean interval between successive child starts while the driver is the bottleneck (past the first 10%)."""
    starts = sorted(s["start"] for s in spans)[len(spans) // 10 :]
    return (starts[-1] - starts[0]) / (len(starts) - 1)


def run_session(gpus: int, args: argparse.Namespace, work: Path) -> dict:
    """One run on a fresh local Ray, through the phases; what the spans say about it."""
    import ray

    from evolve.run import open_run_dir
    from evolve.session import Session
    from evolve.settings import PROGRAM, SEED_GENOME, Settings
    from experiments import profiles
    from mutators import MutatorConfig
    from population import PopulationConfig

    settings = Settings(
        run_dir=work / "run", profile=profiles.load("h100"), population=PopulationConfig(population_size=16),
        generations=10**6, mutators=MutatorConfig(mode="offline"), seed_path=str(SEED_GENOME),
        seed_source=SEED_GENOME.read_text(), program=PROGRAM.read_text(), noise_repeats=2, address=None,
        local_gpus=gpus, cpus_per_child=None, workers=None, lookahead=None, max_hours=math.inf,
        max_llm_cost=math.inf, repeat_share=0.5, seed=0,
    )  # fmt: skip
    open_run_dir(settings)
    (work / "spans").mkdir()
    phases = Phases(work / "spans", gpus, args.saturated_children, args.gaps, args.min_hold)
    # Logical CPUs, one per GPU worker as on a GPU node; the 2 real cores only run sleeping actors.
    ray.init(address="local", num_cpus=gpus, num_gpus=gpus, include_dashboard=False, logging_level=logging.WARNING)
    # Phases stops the run with SIGINT, which a benchmark started in the background (`nohup ... &`) inherits
    # as ignored: make it Ctrl-C again.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    done, started = threading.Event(), time.time()
    try:
        with open(work / "run.log", "w") as log, contextlib.redirect_stdout(log):
            threading.Thread(target=phases.watch, args=(done,), daemon=True).start()
            code = Session(settings, NoOpMutators(), worker_class=hold_worker(work / "spans")).run()
    finally:
        done.set()
        ray.shutdown()
    assert code == 130 and phases.phase == "held", (code, phases.phase, (work / "run.log").read_text()[-2000:])
    summary = summarize(gpus, read_spans(work / "spans"), phases, started, time.time() - started)
    return {**summary, "swap_used_mb": {"start": phases.swap_mb[0], "peak": phases.swap_mb[1]}}


def summarize(gpus: int, spans: list[dict], phases: Phases, started: float, seconds: float) -> dict:
    quick = saturated(spans, phases.marks["saturated"])
    busy = held(spans, phases.marks["held"], phases.hold)
    cost, cpu = driver_cost(quick), phases.worker_cpu
    stats = slot_stats(busy)
    util, basis = at_child_seconds(phases.hold, stats, cost, gpus)
    return {
        "gpus": gpus,
        "session_s": seconds,
        "startup_s": phases.marks["saturated"] - started,
        "saturated": {"children": len(quick), "driver_cost_per_child_s": cost, "children_per_s": 1 / cost},
        "held": {"hold_s": phases.hold, **stats},
        "worker_cores": (cpu[1][1] - cpu[0][1]) / (cpu[1][0] - cpu[0][0]),  # idle overhead of the simulation
        "utilisation_at_300s": util,
        "utilisation_at_300s_basis": basis,
        "meets_target": util >= TARGET,
    }


def at_child_seconds(hold: float, stats: dict, cost: float, gpus: int) -> tuple[float, str]:
    """Utilisation with children of CHILD_SECONDS, and how it was found: measured, where the held phase's
    children held that long (the real case: the driver's pace is in the measurement), else extrapolated
    from the held phase's mean gap and the saturated phase's driver cost. The saturated cost is an upper
    bound: every simulated worker runs on this machine's cores too, and at 256 they crowd out the driver
    (worker_cores), which on a cluster they would not."""
    if hold >= CHILD_SECONDS:
        return stats["utilisation"], "measured: held children of 300 s"
    return extrapolate(stats["idle_gap_s"]["mean"], cost, gpus), "extrapolated: held-phase gap, saturated-phase cost"


def slot_stats(spans: list[dict]) -> dict:
    """Idle gaps between consecutive children on a slot, and utilisation over each slot's window."""
    by_slot: dict[str, list[dict]] = {}
    for span in spans:
        by_slot.setdefault(span["worker"], []).append(span)
    gaps = [b["start"] - a["end"] for slot in by_slot.values() for a, b in zip(slot, slot[1:], strict=False)]
    window = sum(slot[-1]["end"] - slot[0]["start"] for slot in by_slot.values())
    return {
        "slots": len(by_slot),
        "children": len(spans),
        "gaps": len(gaps),
        "idle_gap_s": spread(gaps),
        "utilisation": sum(s["end"] - s["start"] for s in spans) / window,
    }


def spread(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "mean": statistics.fmean(ordered),
        "median": statistics.median(ordered),
        "p95": ordered[int(0.95 * (len(ordered) - 1))],
        "max": ordered[-1],
    }


def extrapolate(gap: float, cost: float, gpus: int, seconds: float = CHILD_SECONDS) -> float:
    """Slot utilisation for children of `seconds`: T / (T + gap), capped by the driver's pace."""
    return min(seconds / (seconds + gap), seconds / (gpus * cost))


def meminfo_mb() -> dict[str, float]:
    """Linux /proc/meminfo in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return {name: int(value.split()[0]) / 1024 for name, value in fields.items() if value.strip().endswith("kB")}


def memory_short(gpus: int) -> str:
    """Why this machine can't hold `gpus` worker processes, or "" when it can (free swap counts)."""
    info = meminfo_mb()
    available = info["MemAvailable"] + info.get("SwapFree", 0.0)
    need = gpus * WORKER_MB + BASE_MB
    if need <= available:
        return ""
    return (
        f"not run: {gpus} worker processes need about {need / 1024:.1f} GiB, "
        f"{available / 1024:.1f} GiB available (memory and swap)"
    )


def swap_used_mb() -> float:
    info = meminfo_mb()
    return info.get("SwapTotal", 0.0) - info.get("SwapFree", 0.0)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["sizes"] if "skipped" not in r]
    sizes = [r["gpus"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    for key in ("median", "mean", "p95"):
        left.plot(sizes, [r["held"]["idle_gap_s"][key] * 1e3 for r in rows], marker="o", label=f"idle gap, {key}")
    cost = [r["saturated"]["driver_cost_per_child_s"] * 1e3 for r in rows]
    left.plot(sizes, cost, marker="s", label="driver cost per child")
    left.set(xscale="log", xlabel="GPUs (simulated)", ylabel="ms", title="per-child scheduling overhead")
    right.plot(sizes, [100 * r["held"]["utilisation"] for r in rows], marker="o", label="measured (held children)")
    right.plot(sizes, [100 * r["utilisation_at_300s"] for r in rows], marker="s", label="300 s children")
    right.axhline(100 * TARGET, color="grey", linestyle="--", label=f"target {100 * TARGET:.0f}%")
    right.set(xscale="log", xlabel="GPUs (simulated)", ylabel="slot utilisation %", title="slot utilisation")
    skipped = [str(r["gpus"]) for r in report["sizes"] if "skipped" in r]
    for ax in (left, right):
        ax.minorticks_off()
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.legend(fontsize=8)
    if skipped:
        fig.suptitle(f"not run on this machine (memory): {', '.join(skipped)} GPUs", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument("--saturated-children", type=int, default=200, help="children of the saturated phase")
    parser.add_argument("--gaps", type=int, default=128, help="idle gaps to measure in the held phase")
    parser.add_argument("--min-hold", type=float, default=2.0, help="shortest hold of the held phase, seconds")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    if min(args.gpus) < 1 or args.saturated_children < 10 or args.gaps < 1 or not args.min_hold > 0:
        parser.error("need --gpus >= 1, --saturated-children >= 10, --gaps >= 1 and --min-hold > 0")
    started = time.perf_counter()
    sizes = []
    for gpus in args.gpus:
        load, short = os.getloadavg()[0], memory_short(gpus)
        if short:
            sizes.append({"gpus": gpus, "skipped": short})
            continue
        with tempfile.TemporaryDirectory() as tmp:
            sizes.append({**run_session(gpus, args, Path(tmp)), "load_average": [load, os.getloadavg()[0]]})
    memory = meminfo_mb()
    report = {
        "benchmark": "scheduler",
        "machine": {**machine(), "memory_mb": round(memory["MemTotal"]), "swap_mb": round(memory.get("SwapTotal", 0))},
        "commit": commit(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "method": " ".join(__doc__.split("\n\n")[1].split()),
        "child_seconds": CHILD_SECONDS,
        "target_utilisation": TARGET,
        "sizes": sizes,
        "wall_seconds": time.perf_counter() - started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scheduler.json").write_text(json.dumps(report, indent=1) + "\n")
    plot(report, args.out / "scheduler.png")
    for r in sizes:
        if "skipped" in r:
            print(f"{r['gpus']:>4} GPUs: {r['skipped']}")
            continue
        gap, cost = r["held"]["idle_gap_s"], r["saturated"]["driver_cost_per_child_s"]
        print(
            f"{r['gpus']:>4} GPUs: idle gap per child {gap['median'] * 1e3:.0f} ms median, {gap['p95'] * 1e3:.0f} ms "
            f"p95; driver {cost * 1e3:.0f} ms/child; held {r['held']['hold_s']:g} s: "
            f"{100 * r['held']['utilisation']:.2f}%; 300 s children: {100 * r['utilisation_at_300s']:.3f}%"
        )
    return report


if __name__ == "__main__":
    main()
