"""What the run's policy (evolve.policy) hands out and is bound by: tasks for slots, and the limits."""

from __future__ import annotations

import math
from dataclasses import dataclass

from evolve.confirm import CONFIRM_SHARE, DEFAULT_TOP
from fitness.curves import PruneRule
from population.messages import LLMSpend


class RunAborted(Exception):
    """The run cannot go on (the seed doesn't train, the mutators are stuck, no worker is left)."""


@dataclass
class Task:
    genome_id: str
    source: str
    kind: str  # "noise" | "child" | "repeat" | "confirm"
    seed: int
    description: str = ""
    operator: str = ""
    llm: LLMSpend | None = None
    attempts: int = 0  # worker deaths so far
    parent: str | None = None  # a child's first parent (what a greedy line compares it with)
    prune: PruneRule | None = None  # set at dispatch: the trainer stops the child if its curve trails this
    best_at_proposal: str | None = None  # the run's best when its parents were picked (evolve.rebase)
    rebase_tried: bool = False


@dataclass(frozen=True)
class Running:
    task: Task
    started: float


@dataclass(frozen=True)
class Limits:
    target_children: int  # generations x population_size
    population_size: int
    noise_repeats: int
    lookahead: int  # proposals kept ready beyond the idle slots
    max_seconds: float = math.inf  # this session's wall clock (--max-hours)
    max_llm_cost: float = math.inf  # whole run (--max-llm-cost)
    max_worker_retries: int = 2  # re-queues of one task after its worker died
    repeat_share: float = 0.5  # repeats started per child started, at most (repeats confirm would-be bests)
    pruning: PruneRule | None = None  # children's rule, its parent's curve filled in at dispatch; None: none
    confirm_top: int = DEFAULT_TOP  # genomes confirmed at fresh seeds at the end (evolve; 0: none)
    confirm_share: float = CONFIRM_SHARE  # the most of the children target the step may cost
