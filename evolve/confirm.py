"""Confirmation at the end of a run: the top few genomes by search score, retrained at fresh seeds.

Search compares children on one training seed (0), so its leader is partly the luckiest of many draws.
As a fixed last step the run retrains its `top` best genomes by search score, and the seed genome (so
the gain is measured on equal seeds), at CONFIRM_SEEDS (never used in search; the seed's noise runs use
0..noise_repeats-1), and hands the user the best by mean over those seeds
(population.survivors.Survivors.confirmed). The budget charges it: the run trains that many fewer
children (a run too small to spend CONFIRM_SHARE of its children on it has none), and with a wall-clock
limit it starts early enough to finish in time. Plain state, driven by evolve.policy.Policy.
"""

from __future__ import annotations

import math

CONFIRM_SEEDS = (100, 101, 102)
DEFAULT_TOP = 4


# The most of a run's children the step may cost. A twentieth, not a tenth: at the real search benchmark's
# scale (8 slots, 61 children) a step of 6 evaluations cut evolve's simulated median gain from 0.453 to
# 0.380 (pruning on, 20 landscapes; README, "Search"), while at 800 children the top is 4 either way.
CONFIRM_SHARE = 0.05


def affordable_top(
    top: int, target_children: int, seeds: int = len(CONFIRM_SEEDS), share: float = CONFIRM_SHARE
) -> int:
    """`top`, fewer where the step (top and seed, at each seed) would cost over `share` of the children
    target: 0 (no confirmation) for runs too small to afford one (under 120 children at the default)."""
    return max(0, min(top, int(target_children * share) // seeds - 1))


class Confirmation:
    """States: waiting (search goes on) -> due (search stops) -> queued (tasks handed out) -> done;
    or off (top 0: search goes on to the end)."""

    def __init__(self, top: int, seeds: tuple[int, ...] = CONFIRM_SEEDS) -> None:
        if top < 0:
            raise ValueError(f"confirmation top must be >= 0, got {top!r}")
        self.top, self.seeds = top, seeds
        self.state = "waiting" if top else "off"
        self.outstanding = 0

    @property
    def evaluations(self) -> int:
        """What the step costs, in evaluations (charged to the children target): the top and the seed."""
        return (self.top + 1) * len(self.seeds) if self.top else 0

    def reserve_seconds(self, slots: int, mean_seconds: float) -> float:
        """Wall clock to keep for the step: the children in flight finishing, then its rounds of slots."""
        if not self.pending():
            return 0.0
        return (math.ceil(self.evaluations / max(1, slots)) + 1) * mean_seconds

    def start(self, search_done: bool, children_in_flight: bool, board) -> list[tuple[str, int]]:
        """The step's evaluations, once search is over (`search_done`, or due by the clock) and no child is
        in flight; [] before (or after)."""
        over = self.state == "due" or (self.state == "waiting" and search_done)
        if not over or children_in_flight:
            return []
        return self.plan(board.confirm_candidates(self.top, len(self.seeds)))

    def due(self) -> None:
        if self.state == "waiting":
            self.state = "due"

    def plan(self, candidates: list[str]) -> list[tuple[str, int]]:
        """(genome id, training seed) pairs for `candidates` (the top genomes not yet confirmed), seed by
        seed so that a run stopped half way leaves equal seed sets to compare."""
        pairs = [(g, s) for s in self.seeds for g in candidates]
        self.outstanding = len(pairs)
        self.state = "queued" if pairs else "done"
        return pairs

    def recorded(self) -> None:
        self.outstanding -= 1
        if self.outstanding <= 0 and self.state == "queued":
            self.state = "done"

    def pending(self) -> bool:
        return self.state in ("waiting", "due", "queued")

    def searching(self) -> bool:
        return self.state in ("off", "waiting")
