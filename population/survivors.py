"""Survivors: the selection state of a run — standings, survivors, the noise-gated best — as plain Python.

Fed one evaluation at a time (`apply`), in recording order, it answers what selection needs: parents by
tournament, repeat candidates, the best. Population holds one (and rebuilds it by replaying the archive);
the search simulator (benchmarks.simulate) holds one per simulated run, with no git store or archive.

Generations are accounting units: every `population_size` child evaluations, survivor selection runs
over the survivors plus the genomes evaluated since, with a generator seeded by (selection_seed, number
of selections so far), so a replay selects the same survivors. A new best joins the survivors at once.
"""

from __future__ import annotations

import random

from population import selection
from population.messages import Fitness, PopulationConfig
from population.standings import Standings


class Survivors:
    def __init__(self, seed_id: str, config: PopulationConfig) -> None:
        self.config = config
        self.standings = Standings(seed_id, config.confirm_repeats)
        self.ids: list[str] = []  # the survivors
        self._pending: dict[str, None] = {}  # evaluated since the last survivor selection (ordered set)
        self._selections = 0
        self.children = 0  # finished child evaluations (interrupted ones don't count): the generation clock
        self.best: str | None = None

    def apply(self, genome_id: str, val_bpb: float | None, size: int, counted: bool) -> None:
        """One evaluation (`val_bpb` None when not ok); `counted`: a finished child evaluation."""
        self.standings.add(genome_id, val_bpb, size)
        if genome_id not in self.ids:
            self._pending[genome_id] = None
        self.children += counted
        best = self.incumbent()
        self.best = best.id if best else None
        if self.best and self.ids and self.best not in self.ids:
            self._admit_best()
        generation_done = counted and self.children % self.config.population_size == 0
        if generation_done or not self.ids:
            self._select()

    def fitness(self, genome_id: str) -> Fitness:
        return self.standings.fitness(genome_id)

    def ranked(self) -> list[selection.Candidate]:
        """The survivors, best first."""
        return selection.rank(self.standings.candidate(g) for g in self.ids)

    def select_parents(self, k_parents: int, rng: random.Random) -> list[str]:
        """Tournament picks among the survivors, distinct while there are enough of them."""
        ranked, picks = self.ranked(), []
        for _ in range(k_parents):
            pool = [c for c in ranked if c not in picks] or ranked
            picks += selection.tournament(pool, self.config.tournament_size, 1, rng)
        return [c.id for c in picks]

    def repeat_candidates(self, n: int) -> list[str]:
        """Up to n genome ids that deserve a repeat evaluation now (the same ids until it is recorded)."""
        c = self.config
        return selection.repeat_candidates(
            self.standings.ranked(),
            self.incumbent(),
            n,
            self.standings.sigma(),
            c.noise_margin_sigma,
            c.confirm_repeats,
        )

    def incumbent(self) -> selection.Candidate | None:
        """The noise-gated best: see population.selection.incumbent."""
        leader, anchor = self.standings.leader(), self.standings.anchor()
        return selection.incumbent(leader, anchor, self.standings.sigma(), self.config.noise_margin_sigma)

    def _select(self) -> None:
        c = self.config
        pool = {*self.ids, *self._pending, self.best}
        ranked = selection.rank(self.standings.candidate(g) for g in pool if g in self.standings)
        best = [x for x in ranked if x.id == self.best]
        elites = (best + [x for x in ranked if x.id != self.best])[: c.elitism]
        rng = random.Random(c.selection_seed * 1_000_003 + self._selections)
        self.ids = [x.id for x in selection.select_survivors(ranked, c.population_size, elites, c.tournament_size, rng)]
        self._pending.clear()
        self._selections += 1

    def _admit_best(self) -> None:
        """A new best joins the survivors at once (elitism), in place of the worst when they are full."""
        if len(self.ids) >= self.config.population_size:
            worst = self.ranked()[-1].id
            self.ids.remove(worst)
            self._pending[worst] = None
        self.ids.append(self.best)
        self._pending.pop(self.best, None)
