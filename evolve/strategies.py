"""Search strategies: who a new child's parents are, and which genome the run hands the user at the end.

Every strategy uses the same operators, orchestrator and policy (evolve.policy); only these choices differ.
- evolve: parents by tournament over the population's front (population.survivors); children compared on
  training seed 0; the pick is the best of the top few confirmed at fresh seeds at the end (evolve.confirm);
  a share of offline proposals (MutatorConfig.transplant_rate) are transplants: the best plus the knob
  changes of a survivor from another lineage.
- greedy: autoresearch's loop: one incumbent, one child at a time, the child kept when it scores lower.
- parallel-greedy: one incumbent; every free slot trains a mutant of the current incumbent.
- independent: one greedy line per slot (each with at most one child outstanding); the pick is the best
  line's incumbent.
- random: every child a mutant of the seed; the pick is the best child.

A greedy line compares a child's score at training seed 0 with its incumbent's at seed 0 (the seed's own
seed-0 noise evaluation to begin with), so no score is an average over unequal sets of seeds.
Plain Python: the `board` (a Population, an actor adapter or the simulator's state) answers the queries.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Protocol

from population.messages import Fitness, Genome

STRATEGIES = ("evolve", "greedy", "parallel-greedy", "independent", "random")
DONOR_TOURNAMENT = 2  # contestants per pick of a transplant's donor (best first: the lower index wins)


class Board(Protocol):
    """What the policy asks of the run's state (population.Population has these methods)."""

    def seed(self) -> Genome: ...
    def genome(self, genome_id: str) -> Genome: ...
    def fitness(self, genome_id: str) -> Fitness: ...
    def best(self) -> Genome | None: ...
    def select_parents(self, k_parents: int, rng: random.Random) -> list[Genome]: ...
    def repeat_candidates(self, n: int) -> list[str]: ...
    def unrelated(self, genome_id: str) -> list[Genome]: ...
    def confirm_candidates(self, n: int, seeds: int) -> list[str]: ...


@dataclass
class Line:
    """One greedy line: its incumbent, the incumbent's seed-0 score, and the parents of its outstanding
    children (proposed, queued or training)."""

    incumbent: str
    score: float = math.inf
    pending: list[str] = field(default_factory=list)


class Strategy:
    """evolve: the population decides (tournament parents, the confirmed best)."""

    name = "evolve"
    repeats = True  # repeat evaluations confirm a would-be best (when the population's scores are not paired)
    confirms = True  # the top few are confirmed at fresh seeds at the end (evolve.confirm)

    def can_propose(self) -> bool:
        return True

    def parents(self, board: Board, rng: random.Random) -> list[Genome]:
        return board.select_parents(2, rng) or [board.seed()]

    def transplant_parents(self, board: Board, rng: random.Random) -> list[Genome]:
        """[best, donor] for a transplant (the donor's knob changes brought onto the best): the donor is a
        survivor of another lineage, by a tournament of two among those; [] when there is none."""
        best = board.best()
        others = board.unrelated(best.id) if best else []
        if not others:
            return []
        return [best, others[min(rng.randrange(len(others)) for _ in range(DONOR_TOURNAMENT))]]

    def proposal_failed(self, parents: tuple[str, ...]) -> None:
        pass

    def scored(self, genome_id: str, parent: str | None, val_bpb: float | None) -> None:
        """A child's seed-0 result (`parent` None for the seed's own seed-0 evaluation)."""

    def pick(self, board: Board) -> str | None:
        best = board.best()
        return best.id if best else None


class Greedy(Strategy):
    """greedy (lines=1, cap=1), parallel-greedy (lines=1, no cap), independent (lines=slots, cap=1),
    random (lines=1, no cap, parents always the seed)."""

    repeats = False
    confirms = False

    def __init__(self, name: str, seed_id: str, lines: int, cap: int | None, from_seed: bool = False) -> None:
        self.name = name
        self.seed_id = seed_id
        self.lines = [Line(seed_id) for _ in range(lines)]
        self.cap = cap  # outstanding children per line, at most
        self.from_seed = from_seed

    def can_propose(self) -> bool:
        return self._free_line() is not None

    def transplant_parents(self, board: Board, rng: random.Random) -> list[Genome]:
        return []  # a greedy line mutates its own incumbent only

    def parents(self, board: Board, rng: random.Random) -> list[Genome]:
        line = self._free_line()
        assert line is not None, "parents() without can_propose()"
        parent = self.seed_id if self.from_seed else line.incumbent
        line.pending.append(parent)
        return [board.genome(parent)]

    def proposal_failed(self, parents: tuple[str, ...]) -> None:
        self._take_line(parents[0] if parents else "")

    def scored(self, genome_id: str, parent: str | None, val_bpb: float | None) -> None:
        if parent is None:  # the seed's seed-0 score: where every line starts
            for line in self.lines:  # a child scored before it was taken against no score: it stays if it beat it
                if val_bpb is not None and (line.incumbent == self.seed_id or line.score >= val_bpb):
                    line.incumbent, line.score = self.seed_id, val_bpb
            return
        line = self._take_line(parent)
        if line is not None and val_bpb is not None and val_bpb < line.score:
            line.incumbent, line.score = genome_id, val_bpb

    def pick(self, board: Board) -> str | None:
        return min(self.lines, key=lambda line: line.score).incumbent

    def _free_line(self) -> Line | None:
        free = [line for line in self.lines if self.cap is None or len(line.pending) < self.cap]
        return min(free, key=lambda line: len(line.pending)) if free else None

    def _take_line(self, parent: str) -> Line | None:
        """The line that proposed a child of `parent` (None for a child no line asked for: a repair)."""
        for line in self.lines:
            if parent in line.pending:
                line.pending.remove(parent)
                return line
        return None


def make_strategy(name: str, seed_id: str, slots: int) -> Strategy:
    if name == "evolve":
        return Strategy()
    if name == "greedy":
        return Greedy(name, seed_id, lines=1, cap=1)
    if name == "parallel-greedy":
        return Greedy(name, seed_id, lines=1, cap=None)
    if name == "independent":
        return Greedy(name, seed_id, lines=max(1, slots), cap=1)
    if name == "random":
        return Greedy(name, seed_id, lines=1, cap=None, from_seed=True)
    raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
