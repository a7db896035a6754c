"""RunResult: the one message a trained-and-scored genome turns into (trainer -> population)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

# ok: trained and scored. crash: the genome raised or exited non-zero. timeout: killed at the hard
# wall-clock limit. over_budget: trained past its budget. nan: loss or logits went non-finite.
# invalid: broke the harness contract (no model, non-causal, wrong logits shape, not exportable).
# interrupted: the run was stopped while this child was in flight (set by the orchestrator).
# pruned: stopped early by the trainer because its loss curve trailed its parent's (fitness.curves); unscored.
STATUSES = ("ok", "crash", "timeout", "over_budget", "nan", "invalid", "interrupted", "pruned")


@dataclass(frozen=True)
class RunResult:
    """Every figure is measured outside the genome's reach (the trainer, the kernel, the scorer) but the two
    marked as the genome's own report: shown, and never used in a decision (its loss curve may stop it early:
    status pruned; it never scores it)."""

    status: str
    reason: str = ""  # one line; empty for ok
    val_bpb: float = math.nan
    test_bpb: float = math.nan
    training_seconds: float = 0.0  # train.py's time (set-up, training, export) on the run's clock, by the trainer
    total_seconds: float = 0.0
    num_steps: int = 0  # reported by the genome's own process
    tokens: int = 0  # training tokens served, reported by the genome's own process
    num_params: int = 0  # of the submitted model, counted by the scorer
    # the child's memory at its peak on its device, by the trainer: on a CPU host memory (its cgroup, else the
    # watchdog's /proc sums); on a GPU the card's memory its processes held (the driver's count, trainer.gpumemory)
    peak_memory_mb: float = 0.0
    device: str = ""  # e.g. "cpu:2" or "NVIDIA H100 80GB HBM3"
    seed: int = 0
    profile: str = ""
    budget_seconds: float = 0.0
    phases: dict = dataclasses.field(default_factory=dict)  # non-training seconds by phase
    log_tail: str = ""
    loss_curve: tuple = ()  # ((progress, training loss), ...): the genome's own report (fitness.curves)

    def __post_init__(self) -> None:
        assert self.status in STATUSES, self.status

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def overhead_seconds(self) -> float:
        return max(0.0, self.total_seconds - self.training_seconds)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunResult:
        names = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in d.items() if k in names}
        fields["loss_curve"] = tuple(tuple(point) for point in fields.get("loss_curve", ()))
        return cls(**fields)
