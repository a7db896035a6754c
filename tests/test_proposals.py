"""The Proposer against a real PopulationActor: a transplant proposal is the best plus another lineage's knobs."""

from __future__ import annotations

import time

import ray

from evolve.orchestrator import ActorBoard
from evolve.proposals import Child, Proposer
from evolve.strategies import make_strategy
from fitness.result import RunResult
from mutators import MutatorConfig, Mutators
from population import PopulationConfig
from population.actor import PopulationActor

WHEN = dict(started="2025-01-01T00:00:00+00:00", finished="2025-01-01T00:05:00+00:00")
CONFIG = PopulationConfig(population_size=4, tournament_size=2, elitism=1, confirm_repeats=1)


def _add(actor, source: str, parent, description: str, val_bpb: float):
    genome, _ = ray.get(actor.add.remote(source, (parent.id,), "hyperparam", description, 1, {}))
    ray.get(actor.record.remote(genome.id, RunResult("ok", val_bpb=val_bpb), kind="child", generation=1, **WHEN))
    return genome


def _finished(proposer: Proposer) -> list:
    done: list = []
    for _ in range(2400):
        done += proposer.finished()
        if done and not proposer.in_flight:
            return done
        time.sleep(0.05)
    raise AssertionError("no proposal finished in 120 s")


def test_a_transplant_brings_a_donors_knob_changes_onto_the_best(ray_session, tmp_path, seed_source):
    actor = PopulationActor.remote(str(tmp_path / "run"), seed_source, CONFIG)
    seed = ray.get(actor.seed.remote())
    # four child evaluations: a generation, so survivor selection has run and every genome is a survivor
    ray.get(actor.record.remote(seed.id, RunResult("ok", val_bpb=1.6), kind="child", generation=0, **WHEN))
    a = _add(actor, seed_source.replace("MATRIX_LR = 0.02", "MATRIX_LR = 0.03"), seed, "a", 1.5)
    best = _add(actor, a.source.replace("NS_STEPS = 5", "NS_STEPS = 4"), a, "a2", 1.2)
    donor = _add(actor, seed_source.replace("EMBED_LR = 0.3", "EMBED_LR = 0.2"), seed, "b", 1.45)
    mutators = Mutators(MutatorConfig(mode="offline", transplant_rate=1.0), api_key_from_env=False)
    proposer = Proposer(actor, mutators, program="p", profile="cpu", seed_genome=seed, rng_seed=0, start_index=0)
    board, strategy = ActorBoard(actor), make_strategy("evolve", seed.id, 2)
    try:
        proposer.start(2, lambda rng: strategy.parents(board, rng), lambda rng: strategy.transplant_parents(board, rng))
        (child,) = _finished(proposer)
    finally:
        proposer.close()
    assert isinstance(child, Child) and child.operator == "transplant" and child.parents == (best.id,)
    assert child.source == best.source.replace("EMBED_LR = 0.3", "EMBED_LR = 0.2")
    assert child.description == f"transplant from {donor.id[:7]}: EMBED_LR 0.3 -> 0.2"
