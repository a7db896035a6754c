"""The real landscape for benchmarks.simrun.run_strategy: a genome's knobs rendered into train.py, trained
by the real trainer and scored, its cost the CPU-seconds charged for all of it.

A genome is its knob vector, as in the simulator (mutators.offline.find_knobs under the profile): the
seed genome's train.py with those knob values written over its literals (mutators.offline.rewrite, the
edit the offline hyperparam operator makes). It is trained by trainer.run (sandbox, child process, a
scorer kept warm as a trainer worker keeps it) on one core, with the profile's budget in CPU-seconds.

Cost, the slot time the virtual clock charges: train.py's time on the child's CPU clock (set-up,
training, export), the child's start before train.py (process start and imports; the trainer measures it
in wall seconds, so it is divided by the stretch load put on train.py's own wall time: an estimate, see
start_cpu), and the CPU-seconds of the scorer's process tree and of this process (sandbox set-up,
clean-up) during the evaluation. A failed child is charged the same way. The scorer's start, once per
worker, is charged to no child (a run's trainer worker warms its scorer before its first child).

Results are kept on disk, one file per (train.py's sha1, training seed): a rerun resumes evaluation by
evaluation and runs share the evaluations of identical genomes (common random numbers); a process that
needs an evaluation another is training waits for it (a lock file naming its owner). The cache holds
one profile's results only (its settings.json says which).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from pathlib import Path

from benchmarks import ready_scorer
from benchmarks.landscape import Evaluation
from fitness import data
from fitness.profile import Profile
from fitness.result import RunResult
from mutators.offline import find_knobs, rewrite
from trainer import TrainerConfig, proctree, run, scorer_process

REPO = Path(__file__).resolve().parents[1]
SEED_GENOME = REPO / "trainer" / "seeds" / "train.py"
START_TIMEOUT_S = 600.0  # the scorer's start, on a shared machine
WAIT_S = 1.0  # between looks at an evaluation another process is training
FIELDS = ("status", "reason", "val_bpb", "test_bpb", "tokens", "num_steps", "training_seconds", "total_seconds")


def source_id(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()


def _plain(value):
    """JSON-friendly: numpy scalars to Python, NaN to None."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and not math.isfinite(value) else value


class Evaluator:
    """Trains genomes one after another on `threads` cores, with a scorer kept warm as a trainer worker
    does (started at the first evaluation); each row carries its cost in CPU-seconds (the module's doc)."""

    def __init__(self, profile: Profile, label: str, threads: int = 1) -> None:
        self.profile, self.label = profile, label
        self.config = TrainerConfig(threads=threads, device="cpu")
        self.scorer = None
        self.records: list[dict] = []

    def __call__(self, source: str, seed: int, kind: str, description: str) -> dict:
        if self.scorer is None:  # a worker's one-time start, charged to no child (as a run's worker warms it)
            p = self.profile  # the data and tokenizer first, as a worker prepares them before it warms its scorer
            data.prepare(p.dataset, p.vocab_size, (p.seq_len,), p.num_shards)
            self.scorer = scorer_process(self.config.threads)
            ready_scorer(self.scorer, self.profile, self.config.threads, START_TIMEOUT_S, self.label)
        mine, scorer = _own_cpu(), _tree_cpu(self.scorer)
        result: RunResult = run(source, self.profile, seed=seed, config=self.config, scorer=self.scorer)
        charged = result.training_seconds + start_cpu(result)
        charged += (_own_cpu() - mine) + _delta(scorer, _tree_cpu(self.scorer))
        row = {"index": len(self.records) + 1, "kind": kind, "genome": source_id(source)[:12], "training_seed": seed}
        row.update(description=description, cost_seconds=round(charged, 3))
        row.update({k: _plain(getattr(result, k)) for k in FIELDS}, phases=result.phases)
        row["loss_curve"] = [list(point) for point in result.loss_curve]
        self.records.append(row)
        score = f"val_bpb {row['val_bpb']:.4f}" if row["status"] == "ok" else f"{row['status']}: {row['reason'][:80]}"
        print(f"search: {self.label} #{row['index']} {kind} (seed {seed}): {score}, {charged:.1f} CPU-s", flush=True)
        return row

    def close(self) -> None:
        if self.scorer is not None:
            self.scorer.close()


def start_cpu(result: RunResult) -> float:
    """The child's start before train.py (process start, imports), in CPU-seconds: its wall seconds over
    the stretch its train.py saw (wall over CPU-clock seconds, which load on the machine raises above 1)."""
    start, training = result.phases.get("child_start", 0.0), result.training_seconds
    stretch = (training + result.phases.get("child_other", 0.0)) / training if training > 0 else 1.0
    return start / max(1.0, stretch)


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _tree_cpu(scorer) -> tuple[int, float]:
    """(pid, CPU-seconds) of the scorer's process tree now; (0, 0) before it has started."""
    proc = scorer.proc
    if proc is None or proc.poll() is not None:
        return 0, 0.0
    return proc.pid, proctree.cpu_seconds(proctree.tree(proc.pid))


def _delta(before: tuple[int, float], after: tuple[int, float]) -> float:
    """CPU-seconds the scorer used between two looks; all of the new one's if it was (re)started."""
    return after[1] - before[1] if before[0] == after[0] else after[1]


class RealLandscape:
    """`seed_genome()` and `evaluate(knobs, training_seed) -> Evaluation` (benchmarks.landscape's API) on
    the real trainer, cached in `cache` by (source sha1, training seed)."""

    def __init__(self, profile: Profile, cache: Path, label: str = "real") -> None:
        self.profile, self.cache = profile, cache
        self.curves = False  # True: a run that prunes reads this landscape (see `evaluate`)
        self.seed_source = SEED_GENOME.read_text()
        self.knobs = {k.name: k for k in find_knobs(self.seed_source, profile.name)}
        self.evaluator = Evaluator(profile, label)
        self.trained = self.reused = 0
        check_cache(cache, profile)

    def seed_genome(self) -> dict:
        return {name: knob.value for name, knob in self.knobs.items()}

    def source(self, genome: dict) -> str:
        changes = [(k, genome[name]) for name, k in self.knobs.items() if genome[name] != k.value]
        return rewrite(self.seed_source, changes)

    def row(self, genome: dict, training_seed: int) -> dict:
        """The cached evaluation of `genome` at `training_seed`; trained now if no process has it, or
        waited for if another process is training it."""
        source = self.source(genome)
        path = self.cache / f"{source_id(source)}-{training_seed}.json"
        while not path.exists():
            if _lock(path.with_suffix(".lock")):
                try:
                    return self._train(source, training_seed, path)
                finally:
                    path.with_suffix(".lock").unlink()
            time.sleep(WAIT_S)
        self.reused += 1
        return json.loads(path.read_text())

    def _train(self, source: str, training_seed: int, path: Path) -> dict:
        if path.exists():  # finished between our look and our lock
            self.reused += 1
            return json.loads(path.read_text())
        row = self.evaluator(source, training_seed, "eval", "")
        self.trained += 1
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(row))
        tmp.rename(path)
        return row

    def evaluate(self, genome: dict, training_seed: int) -> Evaluation:
        row = self.row(genome, training_seed)
        if self.curves and row["status"] == "ok" and "loss_curve" not in row:
            row = self._backfill(genome, training_seed)
        val = row["val_bpb"] if row["status"] == "ok" else None
        curve = tuple(tuple(point) for point in row.get("loss_curve", ()))
        return Evaluation(val, row["cost_seconds"], curve)

    def _backfill(self, genome: dict, training_seed: int) -> dict:
        """A row cached before rows kept loss curves, read by a run that prunes: the genome is trained again
        at the same seed for its curve. The row keeps its score and cost (every method reads those, so they
        stay what the other runs saw) and says where the curve came from (`curve_backfill`: the retraining's
        own score and steps)."""
        source = self.source(genome)
        path = self.cache / f"{source_id(source)}-{training_seed}.json"
        lock = path.with_suffix(".curvelock")
        while "loss_curve" not in (row := json.loads(path.read_text())):
            if not _lock(lock):
                time.sleep(WAIT_S)
                continue
            try:
                row = json.loads(path.read_text())
                if "loss_curve" in row:
                    break
                again = self.evaluator(source, training_seed, "curve", "")
                self.trained += 1
                row["loss_curve"] = again["loss_curve"]
                row["curve_backfill"] = {k: again[k] for k in ("status", "val_bpb", "num_steps", "cost_seconds")}
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(row))
                tmp.rename(path)
            finally:
                lock.unlink()
        return row

    def close(self) -> None:
        self.evaluator.close()


def _lock(path: Path) -> bool:
    """Take the lock at `path` (a file naming its owner: pid and start time); a lock whose owner is gone is
    taken over (the start time tells a reused pid from its owner)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            owner = path.read_text().split()
        except FileNotFoundError:  # released: look again
            return False
        if owner and owner != _identity(int(owner[0]))[: len(owner)]:
            path.unlink(missing_ok=True)
        return False
    os.write(fd, " ".join(_identity(os.getpid())).encode())
    os.close(fd)
    return True


def _identity(pid: int) -> list[str]:
    """[pid, start time in clock ticks] of a live process; [] for one that is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return [str(pid), f.read().rsplit(b")", 1)[1].split()[19].decode()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def check_cache(cache: Path, profile: Profile) -> None:
    """A cache directory holds one profile's evaluations: refuse another's."""
    cache.mkdir(parents=True, exist_ok=True)
    path, mine = cache / "settings.json", {"profile": dataclasses.asdict(profile)}
    if path.exists() and json.loads(path.read_text()) != mine:
        raise SystemExit(f"search: {str(cache)!r} caches evaluations of another profile; pass another --cache")
    if not path.exists():
        path.write_text(json.dumps(mine, indent=1) + "\n")
