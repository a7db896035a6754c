"""TrainerWorker: a Ray actor that trains one child at a time on the slot (GPU or cores) Ray gave it.

Each worker keeps one scorer process warm for its whole life, and a standby child (trainer.Standby)
that gets ready while the last child is scored, and prepares the dataset and tokenizer on its own node
at start-up (under the cache's file lock, so workers sharing a node build it once):
no shared filesystem is assumed. Genome source arrives as an argument, through Ray, never a file.
Each child's log is kept in the run directory's logs/ where that directory is on the worker's node.

A worker that dies (killed, OOM, node lost) is restarted by Ray; the orchestrator sees the in-flight
call fail with a RayActorError and re-queues that child.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

import ray

from evolve.messages import Trained, Where, WorkerReady
from fitness import data
from fitness.curves import PruneRule
from fitness.profile import Profile
from trainer import Standby, TrainerConfig, scorer_process
from trainer import run as train_one


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class TrainerWorker:
    """Created through `ray.remote(...)` by the orchestrator with the slot's resources."""

    def __init__(self, profile: dict, device: str, threads: int, hide: tuple[str, ...] = ()) -> None:
        self.profile = Profile(**profile)
        self.config = TrainerConfig(threads=threads, device=device)
        self.hide = tuple(Path(p) for p in hide)
        self.scorer = scorer_process(threads)  # stays warm for every child
        self.standby = Standby()  # the next child, started while the last one is scored
        context = ray.get_runtime_context()
        self.node = f"{socket.gethostname()}:{context.get_node_id()[:8]}"
        self.worker = f"{context.get_actor_id()[:8]}:{os.getpid()}"
        self.children = 0

    def prepare(self) -> WorkerReady:
        """Build (or find) this node's dataset, tokenizer and token caches; returns where this worker is."""
        started = time.perf_counter()
        p = self.profile
        data.prepare(p.dataset, p.vocab_size, (p.seq_len,), p.num_shards)
        self.standby.fill(p, self.config, self._hide())
        gpus = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
        from evolve import provenance

        return WorkerReady(
            node=self.node,
            worker=self.worker,
            pid=os.getpid(),
            gpus=tuple(str(g) for g in gpus),
            cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
            prepare_seconds=time.perf_counter() - started,
            environment=provenance.environment(self.profile),
        )

    def train(self, source: str, seed: int, prune: PruneRule | None = None, test: bool = False) -> Trained:
        """Train and score one genome (stopped early, unscored, when its loss curve trails by `prune`); test_bpb
        only when `test` (a genome being confirmed: the held-out split stays out of the search); a crash of the
        genome is a result, never an exception here."""
        started = now_iso()
        result = train_one(
            source,
            self.profile,
            seed=seed,
            config=self.config,
            scorer=self.scorer,
            standby=self.standby,
            hide=self._hide(),
            log_path=self._log_path(source, seed, started),
            prune=prune,
            test=test,
        )
        self.children += 1
        return Trained(result, Where(node=self.node, worker=self.worker, started=started, finished=now_iso()))

    def _log_path(self, source: str, seed: int, started: str) -> Path | None:
        """Into the run directory's logs/, where the run directory is on this node (a local run); else not kept."""
        from evolve.runview import log_path

        here = self._hide()
        return log_path(here[0], source, seed, started) if here else None

    def _hide(self) -> tuple[Path, ...]:
        return tuple(p for p in self.hide if p.exists())  # the run directory, where it is on this node

    def pid(self) -> int:
        return os.getpid()
