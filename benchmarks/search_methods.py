"""The three searches the search benchmark compares, each a list of evaluation records at the end.

- evolve: the real run (evolve.session.Session: PopulationActor, Proposer, Orchestrator, TrainerWorkers on a
  private local Ray) with the offline operators, stopped as Ctrl-C would stop it once it has recorded
  `n` evaluations; its noise evaluations of the seed and its repeat evaluations count.
- greedy: the seed project's loop: one incumbent; a hyperparam child of it is kept when it scores lower.
- random: independent hyperparam mutants of the seed, the best kept.

greedy and random train with the real trainer (trainer.run: sandbox, child process, warm scorer) on one
core, every genome at training seed 0 as evolve trains its children. Each function runs in a process of
its own (the benchmark's process pool): evolve starts and stops a Ray of its own there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import random
import shutil
import signal
import threading
import time
from contextlib import redirect_stdout
from pathlib import Path

from fitness.profile import Profile
from fitness.result import RunResult
from mutators import Context, MutatorConfig, Mutators, ParentInfo
from trainer import TrainerConfig, run, scorer_process

REPO = Path(__file__).resolve().parents[1]
SEED_GENOME = REPO / "trainer" / "seeds" / "train.py"
FIELDS = ("status", "reason", "val_bpb", "test_bpb", "tokens", "num_steps", "training_seconds", "total_seconds")


def record(index: int, kind: str, genome: str, seed: int, description: str, result: dict) -> dict:
    """One evaluation as the benchmark reports it; `result` holds at least FIELDS."""
    row = {"index": index, "kind": kind, "genome": genome[:12], "training_seed": seed, "description": description}
    row.update({k: _plain(result[k]) for k in FIELDS})
    return row


def _plain(value):
    """JSON-friendly: numpy scalars to Python, NaN to None."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and not math.isfinite(value) else value


def source_id(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()


class Evaluator:
    """Trains genomes one after another on `threads` cores, with a scorer kept warm as a trainer worker does."""

    def __init__(self, profile: Profile, label: str, threads: int = 1) -> None:
        self.profile, self.label = profile, label
        self.config = TrainerConfig(threads=threads, device="cpu")
        self.scorer = scorer_process(threads)
        self.records: list[dict] = []

    def __call__(self, source: str, seed: int, kind: str, description: str) -> dict:
        result: RunResult = run(source, self.profile, seed=seed, config=self.config, scorer=self.scorer)
        row = record(len(self.records) + 1, kind, source_id(source), seed, description, dataclasses.asdict(result))
        self.records.append(row)
        score = f"val_bpb {row['val_bpb']:.4f}" if row["status"] == "ok" else f"{row['status']}: {row['reason'][:80]}"
        print(
            f"search: {self.label} #{row['index']} {kind} (seed {seed}): {score}, {result.total_seconds:.0f} s",
            flush=True,
        )
        return row

    def close(self) -> None:
        self.scorer.close()


def evaluate_seed(profile: Profile, seeds: list[int]) -> list[dict]:
    """The seed genome at each training seed: the noise level."""
    evaluator = Evaluator(profile, "noise")
    try:
        for seed in seeds:
            evaluator(SEED_GENOME.read_text(), seed, "noise", "seed")
        return evaluator.records
    finally:
        evaluator.close()


def evaluate_genomes(profile: Profile, sources: list[str], seeds: list[int]) -> list[dict]:
    """Each source at each training seed (the confirmation of each run's best)."""
    evaluator = Evaluator(profile, "confirm")
    try:
        for source in sources:
            for seed in seeds:
                evaluator(source, seed, "confirm", "")
        return evaluator.records
    finally:
        evaluator.close()


def local_search(method: str, profile: Profile, seed: int, n: int) -> dict:
    """greedy (mutate the incumbent, keep a better child) or random (mutate the seed, keep the best)."""
    assert method in ("greedy", "random"), method
    rng, mutators = random.Random(seed), Mutators(MutatorConfig(mode="offline"))
    seed_source = SEED_GENOME.read_text()
    seen = {seed_source}
    evaluator = Evaluator(profile, f"{method}-{seed}")
    try:
        first = evaluator(seed_source, 0, "seed", "seed")
        best, best_score = seed_source, _score(first)
        while len(evaluator.records) < n:
            parent = best if method == "greedy" else seed_source
            context = Context(program="", profile=profile.name)
            proposal = mutators.propose(
                "hyperparam", [ParentInfo("parent", parent)], None, context, rng, seen.__contains__
            )
            if not proposal.ok:
                raise RuntimeError(f"{method} seed {seed}: no new child ({proposal.status}: {proposal.reason})")
            seen.add(proposal.draft.source)
            row = evaluator(proposal.draft.source, 0, "child", proposal.draft.description)
            if _score(row) < best_score:
                best, best_score = proposal.draft.source, _score(row)
        return {"method": method, "seed": seed, "evaluations": evaluator.records, "best_source": best}
    finally:
        evaluator.close()


def _score(row: dict) -> float:
    return row["val_bpb"] if row["status"] == "ok" and row["val_bpb"] is not None else math.inf


def evolve(profile: Profile, seed: int, n: int, population: int, noise_repeats: int, run_dir: Path) -> dict:
    """The real run with 2 trainer workers of 1 core, stopped (as by Ctrl-C) after `n` recorded evaluations."""
    import ray

    from evolve.run import CACHE_ENV, PROGRAM, Settings, open_run_dir
    from evolve.session import Session, start_ray
    from population import Population, PopulationConfig

    settings = Settings(
        run_dir=run_dir.resolve(), profile=profile,
        population=PopulationConfig(population_size=population, selection_seed=seed),
        generations=math.ceil(2 * n / population),  # more children than n evaluations: the stop comes first
        mutators=MutatorConfig(mode="offline"), seed_path=str(SEED_GENOME), seed_source=SEED_GENOME.read_text(),
        program=PROGRAM.read_text(), noise_repeats=noise_repeats, address=None, local_gpus=None,
        cpus_per_child=1, workers=2, lookahead=None, max_hours=math.inf, max_llm_cost=math.inf,
        repeat_share=0.5, seed=seed,
    )  # fmt: skip
    shutil.rmtree(run_dir, ignore_errors=True)  # what an interrupted benchmark left: this job starts afresh
    open_run_dir(settings)
    start_ray(settings, CACHE_ENV)
    # _stop_after stops the run with SIGINT, which a job of a benchmark started in the background
    # (`nohup ... &`) inherits as ignored: make it Ctrl-C again.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    done = threading.Event()
    watcher = threading.Thread(target=_stop_after, args=(settings.run_dir, n, done), daemon=True)
    try:
        with open(run_dir / "evolve.log", "w") as log, redirect_stdout(log):
            watcher.start()
            code = Session(settings, Mutators(settings.mutators)).run()
    finally:
        done.set()
        ray.shutdown()
    with Population.read(settings.run_dir) as pop:
        frame, best = pop.archive(), pop.best()
        sources = {gid: pop.genome(gid).source for gid in frame.genome_id.unique()}
    frame = frame[frame.status != "interrupted"].head(n)
    evaluations = [
        record(i + 1, row.kind, row.genome_id, int(row.seed), row.description, row._asdict())
        for i, row in enumerate(frame.itertuples())
    ]
    found = min((e for e in evaluations if e["training_seed"] == 0), key=_score, default=None)
    best_source = next(s for gid, s in sources.items() if gid.startswith(found["genome"])) if found else None
    pick = best.id[:12] if best is not None else None
    return {"method": "evolve", "seed": seed, "evaluations": evaluations, "best_source": best_source,
            "exit_code": code, "run_dir": str(run_dir), "noise_gated_best": pick}  # fmt: skip


def _stop_after(run_dir: Path, n: int, done: threading.Event) -> None:
    """Ctrl-C for the run in this process's main thread once `n` evaluations are recorded."""
    from population import Population
    from population.rundir import MARKER

    while not done.wait(1.0):
        if not (run_dir / MARKER).is_file():  # written last: archive/ and .git exist a moment before it
            continue
        with Population.read(run_dir) as pop:
            frame = pop.archive()
        if len(frame) and int((frame.status != "interrupted").sum()) >= n:
            os.kill(os.getpid(), signal.SIGINT)
            return


def interrupt(signum, frame) -> None:
    """A SIGTERM handler: stop as Ctrl-C stops (finally blocks run, an evolve run stops cleanly)."""
    raise KeyboardInterrupt


def wall_clock(fn, *args) -> tuple[dict | list, float]:
    """Runs in a pool process: the job's result and its wall seconds."""
    signal.signal(signal.SIGTERM, interrupt)
    started = time.perf_counter()
    return fn(*args), time.perf_counter() - started
