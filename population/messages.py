"""The messages population hands out: Genome, Fitness, the run's RunSummary and the PopulationConfig that
steers selection."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Genome:
    """One immutable train.py, stored as one git commit whose parents are the genome's parents."""

    id: str  # full commit hash
    parents: tuple[str, ...]  # () for the seed, one for a mutation, two for a crossover
    operator: str  # "seed", "mutate", "crossover", "repair", "hyperparam", "merge", ...
    description: str  # one line: what this child changed
    source: str  # the train.py text
    generation: int
    created: str  # ISO timestamp
    meta: dict = dataclasses.field(default_factory=dict, hash=False)  # free-form, e.g. the mutator's model
    changes: tuple[str, ...] = ()  # what the operator changed, one line each ("MATRIX_LR 0.02 -> 0.03")

    @property
    def short_id(self) -> str:
        return self.id[:7]


@dataclass(frozen=True)
class ImportedGenome:
    """A genome from another tool's history (an autoresearch kept commit): an ancestor of a new run's seed,
    committed with operator "imported" and never trained here; `meta` keeps what that tool measured."""

    source: str
    description: str
    created: str  # ISO timestamp
    meta: dict = dataclasses.field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Fitness:
    """A genome's val_bpb over all its ok evaluations (lower is better); count 0 means never ok."""

    mean: float = math.nan
    count: int = 0
    std: float = math.nan  # sample std over the ok evaluations; nan below two
    best: float = math.nan  # lowest single val_bpb

    @classmethod
    def of(cls, values: list[float]) -> Fitness:
        if not values:
            return cls()
        mean = sum(values) / len(values)
        std = math.nan
        if len(values) > 1:
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        return cls(mean=mean, count=len(values), std=std, best=min(values))


@dataclass(frozen=True)
class PopulationConfig:
    population_size: int = 16  # survivors kept; also the children per generation (the accounting unit)
    tournament_size: int = 3  # contestants per parent pick, drawn with replacement
    elitism: int = 2  # the best this many genomes always survive
    noise_margin_sigma: float = 2.0  # an unconfirmed challenger must beat the best by this many sigma
    confirm_repeats: int = 3  # ok evaluations that make a genome's mean trusted (confirmed)
    selection_seed: int = 0  # seeds survivor selection, so a resumed run picks the same survivors
    # Defaults from the simulator (benchmarks.simulate --paired, benchmarks.select_ablation) and the real search
    # benchmark's ablation (README, "Search"): paired scores with pruning beat averages with repeats in both
    paired: bool = True  # search scores are seed-0 evaluations only, no repeats, no noise gate (False: repeats)
    parent_pool: str = "front"  # "front": survivors plus every genome evaluated since; "survivors": only them
    tournament_share: float = 1.0  # parent tournaments draw max(tournament_size, share x pool) contestants
    rank_power: float = 0.0  # > 0: parents by rank r with probability ~ r^-power instead of by tournament

    def __post_init__(self) -> None:
        counts = {
            "population_size": self.population_size,
            "tournament_size": self.tournament_size,
            "confirm_repeats": self.confirm_repeats,
        }
        for name, value in counts.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value!r}")
        if not 0 <= self.elitism <= self.population_size:
            raise ValueError(f"elitism must be in [0, population_size], got {self.elitism!r}")
        if self.parent_pool not in ("front", "survivors"):
            raise ValueError(f"parent_pool must be 'front' or 'survivors', got {self.parent_pool!r}")
        if not (self.tournament_share >= 0 and self.rank_power >= 0):
            raise ValueError(
                f"tournament_share and rank_power must be >= 0, got {self.tournament_share!r}, {self.rank_power!r}"
            )
        if not self.noise_margin_sigma >= 0:
            raise ValueError(f"noise_margin_sigma must be >= 0, got {self.noise_margin_sigma!r}")


@dataclass(frozen=True)
class RunSummary:
    """The run at a glance (Population.summary): counts, the best and the seed, the noise level, LLM spend."""

    genomes: int  # committed
    evaluations: int  # archive rows
    children: int  # children evaluated (noise runs and repeats are not children)
    generation: int
    by_status: dict = dataclasses.field(hash=False)  # status -> evaluations, sorted by status
    best_id: str | None
    best_val_bpb: float | None
    best_evaluations: int
    best_confirmed: bool  # the best's score is its mean at fresh seeds (evolve.confirm), not its search score
    seed_id: str
    seed_val_bpb: float | None
    sigma: float | None  # the seed's noise, None until measured
    survivors: int
    llm_cost_usd: float


@dataclass(frozen=True)
class LLMSpend:
    """What the LLM cost to propose one genome (its failed attempts included), as the archive records it."""

    model: str = ""
    input_tokens: int = 0  # the whole prompt, cached parts included
    output_tokens: int = 0
    cost_usd: float = 0.0  # 0 where the model's price is unknown (run.json's llm.price is then null)

    def __add__(self, other: LLMSpend) -> LLMSpend:
        return LLMSpend(
            self.model or other.model,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cost_usd + other.cost_usd,
        )

    @classmethod
    def from_record(cls, record: dict) -> LLMSpend:
        """From its stored form (a genome commit's Meta "llm"); ValueError names an unknown key."""
        unknown = set(record) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(
                f"llm keys must be among model, input_tokens, output_tokens, cost_usd, got {sorted(unknown)!r}"
            )
        return cls(**record)
