"""Profile: the fixed facts of one hardware/data setting (data, vocab, sequence length, budget, scoring).

Profiles themselves live in experiments/profiles; this is only their type, so that fitness needs
nothing from the packages above it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    dataset: str  # "shakespeare" | "climbmix"
    vocab_size: int  # including the BOS special token
    seq_len: int  # the context the model is scored at
    budget_seconds: float  # training time, harness clock
    eval_tokens: int  # validation (and test) tokens scored
    eval_batch_size: int  # rows per scoring forward pass
    untimed_steps: int = 0  # first batch requests not counted (torch.compile warm-up on GPU)
    untimed_allowance_s: float = 0.0  # cap on the time those steps may take without counting
    startup_allowance_s: float = 30.0  # process start, imports, data, model build, export
    genome_allowance_s: float = 10.0  # train.py's set-up and export beyond budget + untimed allowance
    causality_probes: int = 3  # causality probe forwards, each cutting every row at a fresh random position
    loss_explode: float = 20.0  # a reported loss above this (nats) ends the run as nan
    num_shards: int = 0  # climbmix: training shards to prepare (0 for embedded datasets)
    budget_tokens: int = 0  # training tokens served before the batch stream ends (0: none); time stays a cap
    noise_sigma: float = 0.0  # val_bpb σ between training seeds expected on a quiet machine (0: not measured)

    @property
    def hard_limit_s(self) -> float:
        """Wall-clock seconds after which a child is killed, whatever it is doing."""
        return self.budget_seconds + self.untimed_allowance_s + self.startup_allowance_s

    def with_budget(self, seconds: float) -> Profile:
        return dataclasses.replace(self, budget_seconds=float(seconds))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
