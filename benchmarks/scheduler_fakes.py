"""Stand-ins that let the scheduler benchmark run the real orchestrator with no training and no search.

HoldWorker has TrainerWorker's interface (evolve.workers) and holds its slot per child for the seconds
written in `<spans_dir>/hold` (read at each child, so the benchmark can change it during a run), then
returns an ok RunResult with a val_bpb made up from the source (so selection and repeats behave as in a
run); it appends each child's wall-clock span to `<spans_dir>/<pid>.jsonl`. NoOpMutators has the Mutators
interface the Proposer uses and answers at once with the parent, one constant changed.

Every HoldWorker actor imports this module: it must stay light (no torch, no mutators at import time).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

import ray

from evolve.messages import Trained, Where, WorkerReady
from fitness.curves import PruneRule
from fitness.result import RunResult
from mutators.config import MutatorConfig

CONSTANT = "BENCH_CHILD"
_LINE = re.compile(rf"^{CONSTANT} = \d+.*$", re.MULTILINE)


def hold_worker(spans_dir: Path) -> type:
    """HoldWorker recording its spans under `spans_dir` (a class: Session creates the actors)."""
    return type("HoldWorker", (HoldWorker,), {"spans_dir": str(spans_dir)})


class HoldWorker:
    spans_dir = ""

    def __init__(self, profile: dict, device: str, threads: int, hide: tuple[str, ...] = ()) -> None:
        self.profile = profile["name"]
        context = ray.get_runtime_context()
        self.node = f"{socket.gethostname()}:{context.get_node_id()[:8]}"
        self.worker = f"{context.get_actor_id()[:8]}:{os.getpid()}"
        self.spans = Path(self.spans_dir) / f"{os.getpid()}.jsonl"

    def prepare(self) -> WorkerReady:
        gpus = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
        return WorkerReady(
            node=self.node,
            worker=self.worker,
            pid=os.getpid(),
            gpus=tuple(str(g) for g in gpus),
            cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
            prepare_seconds=0.0,
            environment={"benchmark": "scheduler (no training)"},
        )

    def train(
        self, source: str, seed: int, prune: PruneRule | None = None, test: bool = False
    ) -> Trained:  # held, never pruned
        started, iso = time.time(), _now_iso()
        hold = self._hold()
        time.sleep(hold)
        finished = time.time()
        with open(self.spans, "a") as f:
            f.write(json.dumps({"worker": self.worker, "start": started, "end": finished, "hold": hold}) + "\n")
        val_bpb = made_up_score(source, seed)
        result = RunResult(
            "ok", val_bpb=val_bpb, test_bpb=val_bpb, training_seconds=hold, total_seconds=finished - started,
            seed=seed, profile=self.profile, budget_seconds=hold, device="simulated",
        )  # fmt: skip
        return Trained(result, Where(node=self.node, worker=self.worker, started=iso, finished=_now_iso()))

    def _hold(self) -> float:
        try:
            return float((Path(self.spans_dir) / "hold").read_text())
        except (OSError, ValueError):  # not written yet (the benchmark replaces it atomically): no hold
            return 0.0


def made_up_score(source: str, seed: int) -> float:
    """A val_bpb in [1.00, 1.05) fixed by the source, plus a small per-seed wobble (the 'noise')."""
    digest = hashlib.sha1(source.encode()).digest()
    wobble = hashlib.sha1(digest + seed.to_bytes(8, "little")).digest()
    return 1.0 + 0.05 * int.from_bytes(digest[:4], "little") / 2**32 + 1e-4 * wobble[0] / 255


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class NoOpMutators:
    """What the Proposer asks of Mutators, answered instantly: the parent with BENCH_CHILD set to a new number."""

    llm_available = False
    llm_paused = False
    spent_usd = 0.0
    config = MutatorConfig(mode="offline")

    def __init__(self) -> None:
        self.numbers = itertools.count(1)  # next() is atomic under the GIL: the proposer's threads share it

    def __repr__(self) -> str:
        return "NoOpMutators()"

    def budget_left(self) -> bool:
        return True

    def choose_operator(self, rng, n_parents_available: int) -> str:
        return "hyperparam"

    def wants_transplant(self, rng) -> bool:
        return False

    def propose(self, op, parents, ancestor_source, context, rng, is_duplicate=None):
        from mutators.messages import Draft, Proposal  # here, not at the top: HoldWorker actors import this module

        number = next(self.numbers)
        source = with_constant(parents[0].source, number)
        change = f"{CONSTANT} -> {number}"
        return Proposal("ok", op, draft=Draft(source, change, op, (parents[0].id,), (change,)))


def with_constant(source: str, number: int) -> str:
    line = f"{CONSTANT} = {number}  # scheduler benchmark: makes every child a new genome"
    if _LINE.search(source):
        return _LINE.sub(line, source, count=1)
    return source.rstrip("\n") + "\n" + line + "\n"
