"""A small finished run directory built without the orchestrator, for tests that read runs.

`build_smoke_run(run_dir, profile)` trains the seed a few times (kind "noise"), two hyperparameter
children of the seed, a merge of those two (so one genome has two parents) and a child that crashes,
all with the real trainer, records one evaluation each and writes run.json as the orchestrator does.
About seven short trainings: roughly a minute on two cores with the tiny profile. A training that a
loaded machine pushes over its time limit is run again, so the run has the same shape on any machine.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import random
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from evolve import provenance
from fitness.profile import Profile
from mutators import Context, MutatorConfig, Mutators, ParentInfo
from population import Genome, Population, PopulationConfig
from trainer import TrainerConfig, run, scorer_process

REPO = Path(__file__).resolve().parents[1]
SEED_GENOME = REPO / "trainer" / "seeds" / "train.py"
TIMING_TRIES = 3
STEPS = 40  # training steps of the seed genome per evaluation
CRASH_LINE = 'raise RuntimeError("deliberate crash before training")\n'


@dataclass(frozen=True)
class SmokeRun:
    run_dir: Path
    seed: Genome
    children: tuple[Genome, ...]  # hyperparam a, hyperparam b, merge(a, b), crasher
    merge: Genome
    crasher: Genome

    def copy(self, dest: Path) -> Path:
        """A private copy of the run directory, for tests that write into it."""
        shutil.copytree(self.run_dir, dest)
        return dest


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_run_json(run_dir: Path, profile: Profile, config: PopulationConfig, noise_repeats: int) -> None:
    """run.json as the orchestrator writes it (issue 5's contract)."""
    record = {
        "format": 1,
        "created": now(),
        "profile": profile.to_dict(),
        "population": dataclasses.asdict(config),
        "mutators": "offline",
        "seed_genome": str(SEED_GENOME),
        "noise_repeats": noise_repeats,
        "device": "cpu",
        "environment": provenance.environment(profile),
    }
    (run_dir / "run.json").write_text(json.dumps(record, indent=1) + "\n")


def steady(profile: Profile, steps: int = STEPS) -> Profile:
    """The profile with a token budget of `steps` seed-genome steps and a generous time cap: a training
    then does the same work however loaded the machine is, and on one CPU thread gives the same val_bpb
    for the same seed (measured: bit for bit), so a replay can be checked exactly."""
    rows = 8  # the seed's DEVICE_BATCH_SIZE under the smoke profile
    return dataclasses.replace(
        profile, budget_seconds=max(profile.budget_seconds, 15.0), budget_tokens=steps * rows * profile.seq_len
    )


def build_smoke_run(run_dir: Path, profile: Profile, noise_repeats: int = 3, threads: int = 1) -> SmokeRun:
    """`profile` made steady (above). One thread by default: on a 2-core machine shared with other work,
    two OpenMP threads that wait on each other slow a child down far more than one does (4 vs 16 steps)."""
    profile = steady(profile)
    config = PopulationConfig(population_size=4, confirm_repeats=2)
    with Population.open(run_dir, SEED_GENOME.read_text(), config) as pop:
        write_run_json(run_dir, profile, config, noise_repeats)
        trainer = _Trainer(pop, profile, TrainerConfig(threads=threads), run_dir)
        try:
            seed = pop.seed()
            for i in range(noise_repeats):
                trainer.evaluate(seed, kind="noise", seed=i)
            a, b, merged = _children(pop, seed, profile.name)
            crasher, _ = pop.add(CRASH_LINE + a.source, [a.id], "mutate", "raise before training (a crash)", 2)
            for child in (a, b, merged, crasher):
                trainer.evaluate(child)
        finally:
            trainer.close()
    return SmokeRun(run_dir, seed, (a, b, merged, crasher), merged, crasher)


def shared_smoke_run(root: Path, profile: Profile) -> SmokeRun:
    """One smoke run for all of a session's pytest-xdist workers, in `root` (a directory they share): the
    first to ask builds it under a file lock, the others wait for it and read it back. Tests never write
    into it (they copy it first), so sharing it saves a worker about a minute of training."""
    root.mkdir(parents=True, exist_ok=True)
    run_dir, ids = root / "run", root / "genomes.json"
    with open(root / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ids.exists():
            shutil.rmtree(run_dir, ignore_errors=True)  # what a worker that died while building it left
            made = build_smoke_run(run_dir, profile)
            ids.write_text(json.dumps([made.seed.id, *(g.id for g in made.children)]))
            return made
    with Population.read(run_dir) as pop:
        seed, *children = (pop.genome(g) for g in json.loads(ids.read_text()))
    return SmokeRun(run_dir, seed, tuple(children), children[2], children[3])


class _Trainer:
    """Trains genomes with one warm scorer and records each result."""

    def __init__(self, pop: Population, profile: Profile, config: TrainerConfig, run_dir: Path) -> None:
        self.pop, self.profile, self.config, self.run_dir = pop, profile, config, run_dir
        self.scorer = scorer_process(config.threads)

    def evaluate(self, genome: Genome, kind: str = "child", seed: int = 0) -> None:
        """Train and record once; a run the machine's load pushed over its time limits is trained again
        (up to TIMING_TRIES times, only the last recorded), so the run's shape doesn't depend on load."""
        for _ in range(TIMING_TRIES):
            started = now()
            result = run(
                genome.source, self.profile, seed=seed, config=self.config, scorer=self.scorer, hide=(self.run_dir,)
            )
            if result.status not in ("over_budget", "timeout"):
                break
        generation = 0 if kind == "noise" else genome.generation
        self.pop.record(genome.id, result, kind=kind, generation=generation, started=started, finished=now())

    def close(self) -> None:
        self.scorer.close()


def _children(pop: Population, seed: Genome, profile: str) -> tuple[Genome, Genome, Genome]:
    """Two hyperparameter children of the seed whose 3-way merge is clean, and that merge."""
    mutators = Mutators(MutatorConfig(mode="offline"), api_key_from_env=False)
    context, rng = Context(program="", profile=profile), random.Random(0)
    seed_info = ParentInfo(seed.id, seed.source, seed.description)
    a = mutators.propose("hyperparam", [seed_info], None, context, rng).draft
    while True:  # a second child that merges cleanly with the first (different, non-adjacent knobs)
        b = mutators.propose("hyperparam", [seed_info], None, context, rng).draft
        parents = [ParentInfo(f"p{i}", d.source, d.description) for i, d in enumerate((a, b))]
        merged = mutators.propose("merge", parents, seed.source, context, rng)
        if merged.ok:
            break
    genome_a, genome_b = (pop.add(d.source, d.parent_ids, d.operator, d.description, 1)[0] for d in (a, b))
    merge = pop.add(merged.draft.source, (genome_a.id, genome_b.id), "merge", merged.draft.description, 2)[0]
    return genome_a, genome_b, merge
