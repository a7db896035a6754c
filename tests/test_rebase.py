"""Rebasing an LLM child whose parent was overtaken while it waited (evolve.rebase): the policy's part in
process with a real Population, the merge itself (mutators.merge.rebase), and a resumed run's view."""

from __future__ import annotations

import dataclasses

import pytest

from evolve.policy import Limits, Policy
from evolve.proposals import Child
from evolve.strategies import make_strategy
from fitness.result import RunResult
from mutators.merge import rebase
from mutators.messages import ParentInfo
from population import Population, PopulationConfig
from population.messages import LLMSpend

WHEN = dict(started="2025-01-01T00:00:00+00:00", finished="2025-01-01T00:05:00+00:00")
SPEND = LLMSpend("claude-sonnet-5-5", 3000, 400, 0.01)


@pytest.fixture
def pop(tmp_path, seed_source):
    config = PopulationConfig(population_size=4, tournament_size=2, elitism=1, confirm_repeats=3)
    with Population.open(tmp_path / "run", seed_source, config) as population:
        for seed, val in ((0, 3.0), (1, 3.01)):  # the noise: sigma about 0.007
            population.record(
                population.seed().id, RunResult("ok", val_bpb=val, seed=seed), kind="noise", generation=0, **WHEN
            )
        yield population


def policy_for(pop) -> Policy:
    limits = Limits(target_children=8, population_size=4, noise_repeats=2, lookahead=1)
    policy = Policy(limits, make_strategy("evolve", pop.seed().id, 1), pop, 1, children_done=0, now=0.0)
    policy.slot_ready(0)
    return policy


def child_of(pop, parent, knob: str, operator: str = "mutate", llm: LLMSpend | None = SPEND) -> Child:
    """A committed, unevaluated child of `parent` proposed while the seed was the best."""
    source = parent.source.replace("MATRIX_LR = 0.02", knob) if "MATRIX" in knob else parent.source + f"# {knob}\n"
    genome, _ = pop.add(source, [parent.id], operator, knob, 1)
    return Child(genome.id, genome.source, operator, knob, llm, genome.parents, pop.seed().id)


def new_best(pop):
    """A genome that beats the seed by far more than 2 sigma: the run's best from now on."""
    seed = pop.seed()
    genome, _ = pop.add(seed.source.replace("NS_STEPS = 5", "NS_STEPS = 4"), [seed.id], "hyperparam", "NS 4", 1)
    pop.record(genome.id, RunResult("ok", val_bpb=2.0), kind="child", generation=1, **WHEN)
    assert pop.best().id == genome.id
    return genome


def test_an_llm_child_whose_parent_was_overtaken_goes_to_rebase_and_its_successor_trains_first(pop):
    policy = policy_for(pop)
    stale = child_of(pop, pop.seed(), "MATRIX_LR = 0.03")
    offline = child_of(pop, pop.seed(), "offline", "hyperparam", None)
    policy.child_ready(stale)
    policy.child_ready(offline)
    best = new_best(pop)
    waiting = policy.children_to_dispatch()
    ((_, started),) = policy.dispatch(now=0.0)
    assert started.genome_id == offline.genome_id  # an offline child is never held back
    (task,) = policy.take_stale()
    assert task.genome_id == stale.genome_id and policy.take_stale() == []
    assert policy.children_to_dispatch() == waiting  # one running, one rebasing: both still count
    successor, _ = pop.add(best.source.replace("MATRIX_LR = 0.02", "MATRIX_LR = 0.03"), [best.id, stale.genome_id],
                           "rebase", "rebased", 1)  # fmt: skip
    policy.rebased(task, Child(successor.id, successor.source, "rebase", "rebased", SPEND, successor.parents, best.id))
    policy.release(0, now=1.0)
    ((_, started),) = policy.dispatch(now=1.0)
    assert (started.genome_id, started.parent, started.llm) == (successor.id, best.id, SPEND)
    assert stale.genome_id not in {g.id for g in pop.unevaluated()}  # a resumed run never trains the original


def test_a_child_the_merge_cannot_rebase_trains_as_proposed_and_is_not_held_again(pop):
    policy = policy_for(pop)
    policy.child_ready(child_of(pop, pop.seed(), "MATRIX_LR = 0.03"))
    new_best(pop)
    assert policy.dispatch(now=0.0) == []  # the only child is stale: the slot waits for the rebase
    (task,) = policy.take_stale()
    policy.rebased(task, None)
    ((_, started),) = policy.dispatch(now=0.0)
    assert started is task and task.rebase_tried and policy.take_stale() == []


def test_a_child_of_the_new_best_or_proposed_under_it_is_not_stale(pop):
    best = new_best(pop)
    policy = policy_for(pop)
    under_best = dataclasses.replace(child_of(pop, pop.seed(), "MATRIX_LR = 0.03"), best_at_pick=best.id)
    policy.child_ready(under_best)
    policy.child_ready(child_of(pop, best, "MATRIX_LR = 0.04"))
    assert len(policy.dispatch(now=0.0)) == 1 and policy.take_stale() == []


def test_the_merge_moves_the_childs_changes_onto_the_best_and_refuses_what_the_best_has(seed_source):
    parent = ParentInfo("p" * 40, seed_source)
    child = ParentInfo("c" * 40, seed_source.replace("MATRIX_LR = 0.02", "MATRIX_LR = 0.03"), "raise the LR")
    best = ParentInfo("b" * 40, seed_source.replace("NS_STEPS = 5", "NS_STEPS = 4"))
    done = rebase(child, best, parent.source, None, "cpu")
    assert done.ok and done.draft.operator == "rebase" and done.draft.parent_ids == (best.id, child.id)
    assert done.draft.source == best.source.replace("MATRIX_LR = 0.02", "MATRIX_LR = 0.03")
    assert done.draft.description == f"raise the LR (rebased onto {best.id[:7]})"
    same_idea = ParentInfo("d" * 40, best.source, "fewer NS steps")
    refused = rebase(same_idea, best, parent.source, None, "cpu")
    assert not refused.ok and refused.operator == "rebase" and refused.status in ("unchanged", "duplicate")
