"""The genome's side of the harness: `import harness` inside train.py resolves to this module.

Runs inside the sandboxed child process (fitness.child installs it). It serves training batches
and nothing else: no validation or test token is ever loaded in this process. It owns the training
clock, stops the batch stream when the budget is spent, and turns the model handed to `submit` into
an exported graph (torch.export) that a separate scorer process evaluates. A genome can tamper with
this module in its own process; what it cannot do is change the scorer, see held-out tokens, or hide
time from the parent, which re-checks every run against its own clock.

The clock counts wall seconds on a GPU; on a CPU profile it counts the child's CPU-seconds over its threads
(its cgroup's, which the trainer names in the spec; this process's and its reaped children's without one),
so that load on the machine stretches the wall time a child takes, not the work it may do.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from fitness import cpuclock
from fitness.curves import Writer
from fitness.data import RowSampler
from fitness.profile import Profile

EXIT_NAN = 3  # child exit codes the trainer maps to statuses
CURVE_ENV = "EVOLVE_CURVE_FD"  # the trainer's curve pipe (trainer.supervise); taken before the genome runs
_now = time.perf_counter  # captured before any genome code runs

# Set by start(); read by the genome.
profile: str = ""
device: torch.device = torch.device("cpu")
vocab_size: int = 0
bos_id: int = 0
seq_len: int = 0
budget_seconds: float = 0.0
seed: int = 0


class Clock:
    """Training time on `now` (seconds, see `clock_for`): starts at the first batch request; the first
    `untimed` requests (compile warm-up) are free, up to `allowance` seconds in total."""

    def __init__(self, untimed: int, allowance: float, now=_now):
        self.untimed, self.allowance, self.now = untimed, allowance, now
        self.requests, self.first, self.start = 0, None, None

    def tick(self) -> None:
        t = self.now()
        self.requests += 1
        if self.first is None:
            self.first = t
        if self.start is None and (self.requests > self.untimed or t - self.first >= self.allowance):
            self.start = min(t, self.first + self.allowance)

    def elapsed(self) -> float:
        if self.first is None:
            return 0.0
        start = self.start if self.start is not None else self.first + self.allowance
        return max(0.0, self.now() - start)


def clock_for(spec: dict):
    """The budget's clock: wall seconds on a GPU, else CPU-seconds over the child's threads."""
    if spec["device"] != "cpu":
        return _now
    threads, path = spec["threads"], spec.get("cpu_usage_file")
    if path:
        return lambda: cpuclock.cgroup_seconds(path) / threads
    return lambda: cpuclock.process_seconds() / threads


class _Session:
    def __init__(self, spec: dict, prof: Profile):
        self.spec, self.profile = spec, prof
        self.dir = Path(spec["sandbox"])
        tokens = np.memmap(spec["train_tokens"], dtype=np.uint16, mode="r")
        self.sampler = RowSampler(tokens, np.load(spec["train_rows"]), prof.seq_len, spec["seed"])
        self.clock = Clock(prof.untimed_steps, prof.untimed_allowance_s, clock_for(spec))
        self.steps = self.tokens = 0
        self.training_seconds: float | None = None
        self.status, self.reason = "crash", ""
        self.exporting = False
        fd = os.environ.pop(CURVE_ENV, None)
        self.curve = Writer(int(fd) if fd is not None else None)

    def tokens_spent(self) -> bool:
        """The token budget (0 = none) is used up; the batch that crosses it is served whole."""
        return 0 < self.profile.budget_tokens <= self.tokens

    def write(self) -> None:
        """child.json: what happened, as this process (the genome's) says; the trainer measures the rest."""
        record = dict(status=self.status, reason=self.reason, steps=self.steps, tokens=self.tokens)
        record.update(training_seconds=self.training_seconds)
        (self.dir / "child.json").write_text(json.dumps(record))


_session: _Session | None = None


def start(spec: dict) -> None:
    """Called once by fitness.child before the genome runs."""
    global _session, profile, device, vocab_size, bos_id, seq_len, budget_seconds, seed
    prof = Profile(**spec["profile"])
    _session = _Session(spec, prof)
    profile, seq_len, budget_seconds, seed = prof.name, prof.seq_len, prof.budget_seconds, spec["seed"]
    vocab_size, bos_id = prof.vocab_size, prof.vocab_size - 1
    device = torch.device(spec["device"])


def _sync() -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def batches(batch_size: int, length: int | None = None):
    """Yield (x, y) training batches of shape [batch_size, length] until the budget is spent: the time
    budget, or (when the profile sets one) the token budget, whichever runs out first."""
    length = seq_len if length is None else int(length)
    if not 1 <= length <= seq_len:
        raise ValueError(f"batch length must be in [1, {seq_len}], got {length}")
    while True:
        _sync()
        _session.clock.tick()
        if _session.clock.elapsed() >= budget_seconds or _session.tokens_spent():
            return
        rows = torch.from_numpy(_session.sampler.next(batch_size)[:, : length + 1])
        if device.type == "cuda":
            rows = rows.pin_memory().to(device, non_blocking=True)
        _session.tokens += batch_size * length
        yield rows[:, :-1].contiguous(), rows[:, 1:].contiguous()


def progress() -> float:
    """Fraction of the training budget used so far, in [0, 1]: of the token budget when there is one,
    unless the time budget (then a safety cap) is nearer its end."""
    used = _session.clock.elapsed() / budget_seconds
    if _session.profile.budget_tokens:
        used = max(used, _session.tokens / _session.profile.budget_tokens)
    return min(1.0, used)


def report(step: int, loss: float) -> None:
    """Tell the harness the latest training loss; a non-finite or exploding loss ends the run as nan. The
    losses make the child's loss curve, which the trainer may stop it on when it trails its parent's."""
    _session.steps = max(_session.steps, int(step) + 1)
    loss = float(loss)
    if math.isfinite(loss):
        _session.curve.add(progress(), loss)  # progress on the harness's clock, never the genome's say
    if not math.isfinite(loss) or loss > _session.profile.loss_explode:
        _session.status, _session.reason = "nan", f"training loss {loss} at step {step}"
        _session.write()
        os._exit(EXIT_NAN)


def submit(model: torch.nn.Module) -> None:
    """Hand the trained model over for scoring: model(idx[B, T]) -> logits[B, T, vocab_size]."""
    _sync()
    if _session.training_seconds is not None:
        return  # the first submission counts
    _session.training_seconds = _session.clock.elapsed()
    _session.curve.flush()
    _session.steps = _session.steps or _session.clock.requests
    rows = _session.sampler.rows[: _session.profile.eval_batch_size]
    example = torch.from_numpy(np.stack([_session.sampler.tokens[s : s + seq_len] for s in rows]).astype(np.int64))
    _session.exporting = True  # a failure from here on makes the child invalid, not crashed
    model.eval()
    with torch.no_grad():
        program = torch.export.export(model, (example.to(device),), strict=False)
    torch.export.save(program, _session.dir / "model.pt2")
    _session.exporting = False
    _session.status = "ok"
    _session.write()
