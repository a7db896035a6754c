"""Survivors: the selection state of a run — standings, survivors, the search's best — as plain Python.

Fed one evaluation at a time (`apply`), in recording order, it answers what selection needs: parents by
tournament, repeat candidates, the best. Population holds one (and rebuilds it by replaying the archive);
the search simulator (benchmarks.simulate) holds one per simulated run, with no git store or archive.

Generations are accounting units: every `population_size` child evaluations, survivor selection runs
over the survivors plus the genomes evaluated since, with a generator seeded by (selection_seed, number
of selections so far), so a replay selects the same survivors. A new best joins the survivors at once.

Paired comparisons (`config.paired`): a genome's search score is its evaluation at training seed 0 only,
so every comparison is on a common seed and no score averages unequal sets of seeds; the best is then the
leader by that score (no noise gate: the end-of-run confirmation decides what the user gets). Evaluations
at other seeds (the seed's noise runs) only measure sigma. Confirmation evaluations (`confirm`) are kept
apart: `confirmed()` is the best genome by mean over the common confirmation seeds.
"""

from __future__ import annotations

import itertools
import random

from population import selection
from population.messages import Fitness, PopulationConfig
from population.standings import Standings


class Survivors:
    def __init__(self, seed_id: str, config: PopulationConfig) -> None:
        self.config = config
        self.standings = Standings(seed_id, config.confirm_repeats)  # the search scores
        self.pooled = Standings(seed_id, config.confirm_repeats)  # every evaluation: sigma
        self.confirmations: dict[str, list[float]] = {}  # confirmation val_bpb per genome, in seed order
        self.ids: list[str] = []  # the survivors
        self._pending: dict[str, None] = {}  # evaluated since the last survivor selection (ordered set)
        self._selections = 0
        self.children = 0  # finished child evaluations (interrupted ones don't count): the generation clock
        self.best: str | None = None

    def apply(
        self, genome_id: str, val_bpb: float | None, size: int, counted: bool, seed: int = 0, confirm: bool = False
    ) -> None:
        """One evaluation (`val_bpb` None when not ok) at training `seed`; `counted`: a finished child
        evaluation; `confirm`: an end-of-run confirmation (never a search score)."""
        if confirm:
            if val_bpb is not None:
                self.confirmations.setdefault(genome_id, []).append(val_bpb)
            return
        self.pooled.add(genome_id, val_bpb, size)
        if self.config.paired and seed != 0:
            return
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

    def sigma(self) -> float | None:
        """Pooled std of repeated evaluations of a genome (the seed's noise runs first)."""
        return self.pooled.sigma()

    def parent_pool(self) -> list[selection.Candidate]:
        """Who parents are picked from, best first: the survivors, and with `parent_pool` "front" every
        genome evaluated since the last survivor selection too (a new leader competes at once)."""
        if self.config.parent_pool == "survivors":
            return self.ranked()
        ids = {*self.ids, *self._pending}
        return selection.rank(self.standings.candidate(g) for g in ids if g in self.standings)

    def select_parents(self, k_parents: int, rng: random.Random) -> list[str]:
        """Picks from the parent pool, by tournament (or by power law over rank), distinct while there
        are enough of them."""
        c, ranked, picks = self.config, self.parent_pool(), []
        for _ in range(k_parents):
            pool = [x for x in ranked if x not in picks] or ranked
            if c.rank_power > 0:
                picks += selection.power_rank(pool, c.rank_power, 1, rng)
                continue
            k = selection.pool_tournament_size(len(pool), c.tournament_size, c.tournament_share)
            picks += selection.tournament(pool, k, 1, rng)
        return [x.id for x in picks]

    def confirm_candidates(self, n: int, seeds: int) -> list[str]:
        """Of the top `n` genomes by search score and the seed (the gain is measured against it on the same
        seeds), those without `seeds` confirmation evaluations yet."""
        top = [c.id for c in itertools.islice(self.standings.ranked(), n)]
        top += [] if self.standings.root in top else [self.standings.root]
        return [g for g in top if len(self.confirmations.get(g, [])) < seeds]

    def seed_fitness(self, confirmed: bool) -> Fitness:
        """The seed's score to compare the pick with: at the confirmation seeds when the pick is confirmed."""
        root = self.standings.root
        if confirmed and root in self.confirmations:
            return Fitness.of(self.confirmations[root])
        return self.fitness(root)

    def pick(self) -> str | None:
        """What the run hands the user: the best confirmed genome, or before any, the search's best."""
        return self.confirmed() or self.best

    def pick_fitness(self) -> tuple[str | None, Fitness, bool]:
        """(the pick, its fitness, confirmed?): over its confirmation seeds once confirmed, else its search score."""
        confirmed = self.confirmed()
        if confirmed:
            return confirmed, Fitness.of(self.confirmations[confirmed]), True
        return self.best, self.fitness(self.best) if self.best else Fitness(), False

    def confirmed(self) -> str | None:
        """The best confirmed genome: lowest mean over the confirmation seeds, among the genomes with the
        most confirmation evaluations (so every mean compared is over the same seeds)."""
        if not self.confirmations:
            return None
        most = max(len(v) for v in self.confirmations.values())
        full = {g: sum(v) / len(v) for g, v in self.confirmations.items() if len(v) == most}
        return min(full, key=lambda g: (full[g], g))

    def repeat_candidates(self, n: int) -> list[str]:
        """Up to n genome ids that deserve a repeat evaluation now (the same ids until it is recorded)."""
        c = self.config
        if c.paired:
            return []  # no repeats at other seeds mid-run: confirmation comes at the end
        return selection.repeat_candidates(
            self.standings.ranked(),
            self.incumbent(),
            n,
            self.standings.sigma(),
            c.noise_margin_sigma,
            c.confirm_repeats,
        )

    def incumbent(self) -> selection.Candidate | None:
        """The search's best: the leader by seed-0 score when paired, else the noise-gated best (see
        population.selection.incumbent)."""
        if self.config.paired:
            return self.standings.leader()
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
