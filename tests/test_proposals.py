"""The Proposer against a real PopulationActor: a transplant proposal is the best plus another lineage's knobs."""

from __future__ import annotations

import dataclasses
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


def test_a_stale_llm_child_is_rebased_onto_the_new_best_with_its_spend(ray_session, tmp_path, seed_source):
    from evolve import rebase
    from evolve.policy import Task
    from population.messages import LLMSpend

    actor = PopulationActor.remote(str(tmp_path / "run"), seed_source, CONFIG)
    seed = ray.get(actor.seed.remote())
    ray.get(actor.record.remote(seed.id, RunResult("ok", val_bpb=1.6), kind="child", generation=0, **WHEN))
    raised, _ = ray.get(actor.add.remote(seed_source.replace("MATRIX_LR = 0.02", "MATRIX_LR = 0.03"), (seed.id,),
                                         "mutate", "raise the LR", 1, {}))  # fmt: skip
    best = _add(actor, seed_source.replace("NS_STEPS = 5", "NS_STEPS = 4"), seed, "fewer NS steps", 1.2)
    spend = LLMSpend("claude-sonnet-5-5", 3000, 400, 0.01)
    task = Task(raised.id, raised.source, "child", 0, raised.description, "mutate", spend, parent=seed.id)
    mutators = Mutators(MutatorConfig(mode="offline"), api_key_from_env=False)
    proposer = Proposer(actor, mutators, program="p", profile="cpu", seed_genome=seed, rng_seed=0, start_index=0)
    try:
        rebase.start(proposer, task, best, 2)
        (outcome,) = _finished(proposer)
        same_idea, _ = ray.get(actor.add.remote(best.source + "# the best's idea again\n", (seed.id,), "mutate",
                                                "fewer NS steps too", 1, {}))  # fmt: skip
        rebase.start(proposer, dataclasses.replace(task, genome_id=same_idea.id, source=same_idea.source), best, 2)
        (refused,) = _finished(proposer)
    finally:
        proposer.close()
    child = outcome.child
    assert (child.operator, child.parents, child.llm, child.best_at_pick) == (
        "rebase",
        (best.id, raised.id),
        spend,
        best.id,
    )
    assert child.source == best.source.replace("MATRIX_LR = 0.02", "MATRIX_LR = 0.03")
    assert ray.get(actor.genome.remote(child.genome_id)).meta["llm"] == dataclasses.asdict(spend)  # billed on resume
    leftovers = {g.id for g in ray.get(actor.unevaluated.remote())}
    assert child.genome_id in leftovers and raised.id not in leftovers
    assert refused.child is None and refused.reason, refused
