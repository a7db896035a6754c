"""The messages a TrainerWorker sends back over Ray: WorkerReady when it has prepared its node, Trained for
each child. Frozen and picklable (they cross process and node boundaries)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from fitness.result import RunResult


@dataclass(frozen=True)
class WorkerReady:
    """TrainerWorker.prepare's reply: where the worker runs and what its node is (sessions.jsonl keeps it)."""

    node: str  # host:node id
    worker: str  # actor id:pid
    pid: int
    gpus: tuple[str, ...]  # the GPU ids Ray gave it
    cuda_visible_devices: str | None
    prepare_seconds: float
    environment: dict = dataclasses.field(hash=False)  # evolve.provenance.environment

    def record(self) -> dict:
        return {**dataclasses.asdict(self), "gpus": list(self.gpus)}


@dataclass(frozen=True)
class Where:
    """Where and when one evaluation ran (empty for one that never reached a worker)."""

    node: str = ""
    worker: str = ""
    started: str = ""  # ISO timestamps
    finished: str = ""


@dataclass(frozen=True)
class Trained:
    """TrainerWorker.train's reply: the child's result and where it ran."""

    result: RunResult
    where: Where
