"""Strategies' choices over a real Population: a transplant's parents are the best and a survivor of another
lineage (evolve only)."""

from __future__ import annotations

import random

import pytest

from evolve.strategies import make_strategy
from fitness.result import RunResult
from population import Population, PopulationConfig

WHEN = dict(started="2025-01-01T00:00:00+00:00", finished="2025-01-01T00:05:00+00:00")
CONFIG = PopulationConfig(population_size=4, tournament_size=2, elitism=1, confirm_repeats=1)


@pytest.fixture
def lineages(tmp_path, seed_source):
    """seed -> a -> a2 (the best), and seed -> b: every genome evaluated once."""
    with Population.open(tmp_path / "run", seed_source, CONFIG) as pop:
        seed = pop.seed()
        a, _ = pop.add(seed_source + "# a\n", [seed.id], "hyperparam", "a", 1)
        b, _ = pop.add(seed_source + "# b\n", [seed.id], "hyperparam", "b", 1)
        a2, _ = pop.add(a.source + "# a2\n", [a.id], "hyperparam", "a2", 2)
        for genome, val_bpb in ((seed, 1.6), (a, 1.5), (b, 1.45), (a2, 1.2)):
            pop.record(genome.id, RunResult("ok", val_bpb=val_bpb), kind="child", generation=1, **WHEN)
        yield pop, {"seed": seed, "a": a, "b": b, "a2": a2}


def test_unrelated_survivors_are_neither_ancestors_nor_descendants(lineages):
    pop, g = lineages
    assert pop.best() == g["a2"]
    assert pop.unrelated(g["a2"].id) == [g["b"]]
    assert pop.unrelated(g["b"].id) == [g["a2"], g["a"]]
    assert pop.unrelated(g["seed"].id) == []


def test_evolve_transplants_onto_the_best_from_another_lineage_and_greedy_never_does(lineages):
    pop, g = lineages
    evolve = make_strategy("evolve", g["seed"].id, 4)
    assert evolve.transplant_parents(pop, random.Random(0)) == [g["a2"], g["b"]]
    for name in ("greedy", "parallel-greedy", "independent", "random"):
        assert make_strategy(name, g["seed"].id, 4).transplant_parents(pop, random.Random(0)) == []


def test_no_transplant_while_every_survivor_is_in_the_bests_line(tmp_path, seed_source):
    with Population.open(tmp_path / "run", seed_source, CONFIG) as pop:
        child, _ = pop.add(seed_source + "# c\n", [pop.seed().id], "hyperparam", "c", 1)
        for genome, val_bpb in ((pop.seed(), 1.6), (child, 1.5)):
            pop.record(genome.id, RunResult("ok", val_bpb=val_bpb), kind="child", generation=1, **WHEN)
        assert make_strategy("evolve", pop.seed().id, 2).transplant_parents(pop, random.Random(0)) == []
