"""The run's policy in-process with a fake clock: queues, retries, repeats, limits, slots, Ctrl-C, strategies.

The board is a real Population in a temporary directory; proposals are evolve.proposals Child/Failure
messages made here, as the Proposer would hand them over.
"""

from __future__ import annotations

import dataclasses
import random
from collections import deque

import pytest

from evolve.confirm import CONFIRM_SEEDS
from evolve.policy import MAX_PROPOSAL_FAILURES, Limits, Policy, RunAborted
from evolve.proposals import Child, Failure
from evolve.strategies import make_strategy
from fitness.curves import PruneRule
from fitness.result import RunResult
from population import Population, PopulationConfig

WHEN = dict(started="2025-01-01T00:00:00+00:00", finished="2025-01-01T00:05:00+00:00")
CONFIG = PopulationConfig(population_size=4, tournament_size=2, elitism=1, confirm_repeats=3, paired=False)  # repeats


def ok(val_bpb: float, seed: int = 0) -> RunResult:
    return RunResult("ok", val_bpb=val_bpb, peak_memory_mb=1000.0, seed=seed)


@pytest.fixture
def pop(tmp_path, seed_source):
    with Population.open(tmp_path / "run", seed_source, CONFIG) as population:
        yield population


@pytest.fixture
def paired(tmp_path, seed_source):
    """Children compared on training seed 0 only: no repeats, the best is the leader by that score."""
    config = dataclasses.replace(CONFIG, paired=True)
    with Population.open(tmp_path / "paired", seed_source, config) as population:
        yield population


def make_policy(pop, strategy="evolve", slots=2, target=8, **limits) -> Policy:
    limits = Limits(target_children=target, population_size=4, noise_repeats=2, lookahead=1, **limits)
    policy = Policy(limits, make_strategy(strategy, pop.seed().id, slots), pop, slots, children_done=0, now=0.0)
    for slot in range(slots):
        policy.slot_ready(slot)
    return policy


def propose(pop, policy: Policy, i: int) -> Child:
    """One proposal as the Proposer makes it: the strategy's parents, a committed child."""
    parents = policy.strategy.parents(pop, random.Random(i))
    genome, _ = pop.add(parents[0].source + f"# child {i}\n", [parents[0].id], "hyperparam", f"child {i}", 1)
    child = Child(genome.id, genome.source, genome.operator, genome.description, None, genome.parents)
    policy.child_ready(child)
    return child


def finish(pop, policy: Policy, slot: int, result: RunResult, now: float) -> bool:
    """What the driver does with a finished evaluation: release, record, account."""
    task = policy.release(slot, now)
    result = dataclasses.replace(result, seed=task.seed)  # the trainer reports the seed it trained at
    pop.record(task.genome_id, result, kind=task.kind, generation=policy.generation(), **WHEN)
    return policy.recorded(task, result)


def test_noise_evaluations_of_the_seed_go_first_then_children(pop):
    policy = make_policy(pop)
    policy.queue_leftovers(0, [])
    propose(pop, policy, 1)
    started = policy.dispatch(now=0.0)
    assert [t.kind for _, t in started] == ["noise", "noise"]
    assert [t.seed for _, t in started] == [0, 1]
    finish(pop, policy, 0, ok(3.0), now=10.0)
    assert [t.kind for _, t in policy.dispatch(now=10.0)] == ["child"]


def test_a_task_whose_worker_died_is_requeued_first_then_recorded_as_a_crash_after_the_retries(pop):
    policy = make_policy(pop, slots=1, max_worker_retries=1)
    policy.queue_leftovers(1, [])  # one noise evaluation owed
    ((slot, task),) = policy.dispatch(now=0.0)
    lost, result = policy.task_lost(slot, "node lost")
    assert result is None and lost is task and policy.urgent[0] is task
    policy.slot_ready(slot)
    assert policy.dispatch(now=1.0) == [(slot, task)]
    lost, result = policy.task_lost(slot, "node lost")
    assert result.status == "crash" and "died 2 times (node lost)" in result.reason
    assert not policy.urgent


def test_repeats_never_exceed_their_share_of_children_started(pop):
    policy = make_policy(pop, slots=1, target=40, repeat_share=0.5, confirm_top=0)
    pop.record(pop.seed().id, ok(3.0), kind="noise", generation=0, **WHEN)
    pop.record(pop.seed().id, ok(3.002, seed=1), kind="noise", generation=0, **WHEN)
    for i in range(12):
        propose(pop, policy, i)
        ((slot, task),) = policy.dispatch(now=float(i))
        finish(pop, policy, slot, ok(2.999 - i / 1e4), now=i + 0.5)  # a would-be best inside the noise band
    assert policy.dispatched["repeat"] > 0
    assert policy.dispatched["repeat"] <= 0.5 * policy.dispatched["child"]


def test_the_run_aborts_after_too_many_failed_proposals_in_a_row(pop):
    policy = make_policy(pop)
    failure = Failure("hyperparam", "duplicate", "same source as abc", (pop.seed().id,))
    for _ in range(MAX_PROPOSAL_FAILURES - 1):
        policy.proposal_failed(failure)
    propose(pop, policy, 0)  # a child in between resets the count
    for _ in range(MAX_PROPOSAL_FAILURES - 1):
        policy.proposal_failed(failure)
    with pytest.raises(RunAborted, match="failed 50 times in a row"):
        policy.proposal_failed(failure)


def test_a_spent_llm_budget_stops_the_run_without_an_abort(pop):
    policy = make_policy(pop)
    policy.proposal_failed(Failure("mutate", "budget", "spent", ()))
    assert policy.stop_reason and "budget" in policy.stop_reason
    assert policy.proposals_wanted(0) == 0


def test_a_slot_that_keeps_dying_is_retired_and_the_last_one_aborts_the_run(pop):
    policy = make_policy(pop, slots=2)
    assert policy.slot_died(0) and policy.slot_died(0)
    assert not policy.slot_died(0)  # third death in a row: retired
    assert policy.slot_died(1)
    policy.slot_ready(1)  # a finished start-up clears its count
    assert policy.slot_died(1) and policy.slot_died(1)
    with pytest.raises(RunAborted, match="every trainer worker"):
        policy.slot_died(1)


def test_max_hours_is_read_from_the_clock_passed_in(pop):
    policy = make_policy(pop, max_seconds=100.0)
    assert policy.check_limits(99.0, llm_cost=0.0) is None
    assert policy.check_limits(100.0, llm_cost=0.0) == "--max-hours reached"
    assert policy.dispatch(now=100.0) == []


def test_ctrl_c_turns_every_evaluation_in_flight_into_an_interrupted_result(pop):
    policy = make_policy(pop, slots=2)
    policy.queue_leftovers(0, [])
    policy.dispatch(now=5.0)
    stopped = policy.interrupt(now=12.5, reason="Ctrl-C")
    assert [r.status for _, r in stopped] == ["interrupted", "interrupted"]
    assert all(r.total_seconds == 7.5 for _, r in stopped)
    for task, result in stopped:  # recorded as the driver records them: the seed is not judged by Ctrl-C
        pop.record(task.genome_id, result, kind=task.kind, generation=0, **WHEN)
        policy.recorded(task, result)
    assert not policy.inflight and policy.finished() is False  # the noise is still owed: a resume retrains it


def test_a_seed_that_does_not_train_aborts_once_no_noise_evaluation_is_left(pop):
    policy = make_policy(pop, slots=2)
    policy.queue_leftovers(0, [])
    policy.dispatch(now=0.0)
    finish(pop, policy, 0, RunResult("crash", reason="boom"), now=1.0)  # the other is still training
    with pytest.raises(RunAborted, match="does not train on this profile: crash: boom"):
        finish(pop, policy, 1, RunResult("crash", reason="boom"), now=2.0)


def test_the_target_counts_children_done_running_and_queued(pop):
    policy = make_policy(pop, slots=2, target=3, repeat_share=0.0)
    for i in range(3):
        propose(pop, policy, i)
    assert policy.children_to_dispatch() == 0 and policy.proposals_wanted(0) == 0
    for slot, _ in policy.dispatch(now=0.0):
        finish(pop, policy, slot, ok(2.5), now=1.0)
    ((slot, _),) = policy.dispatch(now=1.0)
    finish(pop, policy, slot, ok(2.5), now=2.0)
    assert policy.finished() and policy.generation_text() == "generation 1/1"


def test_greedy_has_one_child_outstanding_and_keeps_a_child_only_when_it_scores_lower(pop):
    policy = make_policy(pop, strategy="greedy", slots=4)
    policy.queue_leftovers(1, [])  # the seed's seed-1 noise evaluation
    pop.record(pop.seed().id, ok(3.0), kind="noise", generation=0, **WHEN)
    policy.strategy.scored(pop.seed().id, None, 3.0)
    first = propose(pop, policy, 1)
    assert not policy.strategy.can_propose()
    started = dict((t.kind, s) for s, t in policy.dispatch(now=0.0))
    finish(pop, policy, started["child"], ok(2.8), now=1.0)
    assert policy.strategy.pick(pop) == first.genome_id
    second = propose(pop, policy, 2)
    assert pop.genome(second.genome_id).parents == (first.genome_id,)
    ((slot, _),) = policy.dispatch(now=1.0)
    finish(pop, policy, slot, ok(2.9), now=2.0)  # worse: not kept
    assert policy.strategy.pick(pop) == first.genome_id and policy.strategy.can_propose()


def test_independent_runs_one_line_per_slot_and_picks_the_best_line(pop):
    policy = make_policy(pop, strategy="independent", slots=3)
    policy.strategy.scored(pop.seed().id, None, 3.0)
    children = [propose(pop, policy, i) for i in range(3)]
    assert not policy.strategy.can_propose()
    for (slot, _), score in zip(policy.dispatch(now=0.0), (2.9, 2.7, 3.1), strict=True):
        finish(pop, policy, slot, ok(score), now=1.0)
    lines = policy.strategy.lines
    assert sorted(line.score for line in lines) == [2.7, 2.9, 3.0]
    assert policy.strategy.pick(pop) == children[1].genome_id


def test_random_always_mutates_the_seed(pop):
    policy = make_policy(pop, strategy="random", slots=2)
    policy.strategy.scored(pop.seed().id, None, 3.0)
    propose(pop, policy, 0)
    for slot, _ in policy.dispatch(now=0.0):
        finish(pop, policy, slot, ok(2.0), now=1.0)
    second = propose(pop, policy, 1)
    assert pop.genome(second.genome_id).parents == (pop.seed().id,)


def test_baseline_strategies_take_no_repeats(pop):
    policy = make_policy(pop, strategy="parallel-greedy", slots=1, target=20)
    pop.record(pop.seed().id, ok(3.0), kind="noise", generation=0, **WHEN)
    pop.record(pop.seed().id, ok(3.002), kind="noise", generation=0, **WHEN)
    for i in range(6):
        propose(pop, policy, i)
        ((slot, _),) = policy.dispatch(now=float(i))
        finish(pop, policy, slot, ok(2.9 - i / 100), now=i + 0.5)
    assert policy.dispatched == {"child": 6, "repeat": 0}


def test_an_unknown_strategy_is_refused_with_its_name(pop):
    with pytest.raises(ValueError, match="'hill-climb'"):
        make_strategy("hill-climb", pop.seed().id, 2)


def test_proposals_are_kept_ready_for_the_idle_slots_plus_the_lookahead_and_no_more_than_the_target(pop):
    policy = make_policy(pop, slots=2, target=8)  # lookahead 1
    assert policy.proposals_wanted(in_flight=0) == 3
    assert policy.proposals_wanted(in_flight=2) == 1
    propose(pop, policy, 0)
    assert policy.proposals_wanted(in_flight=2) == 0
    small = make_policy(pop, slots=2, target=2)
    assert small.proposals_wanted(in_flight=0) == 2


CURVE = ((0.1, 5.0), (0.4, 4.0), (1.0, 3.0))
PRUNING = PruneRule((), at=0.4, margin=0.05, window=0.1)


def curved(val_bpb: float, curve=CURVE) -> RunResult:
    return RunResult("ok", val_bpb=val_bpb, loss_curve=curve)


def test_with_pruning_a_child_carries_its_parents_seed0_curve_and_nothing_else_does(pop):
    policy = make_policy(pop, slots=2, pruning=PRUNING)
    policy.queue_leftovers(0, [])
    noise = policy.dispatch(now=0.0)
    assert all(task.prune is None for _, task in noise)  # the seed's own evaluations are never pruned
    finish(pop, policy, 1, curved(3.1, ((0.5, 9.0),)), now=5.0)  # seed 1: not the curve children compare with
    finish(pop, policy, 0, curved(3.0), now=6.0)
    propose(pop, policy, 1)
    ((_, child),) = policy.dispatch(now=6.0)
    assert child.kind == "child" and child.prune == PruneRule(CURVE, at=0.4, margin=0.05, window=0.1)


def test_without_pruning_or_without_the_parents_curve_children_train_their_whole_budget(pop):
    off = make_policy(pop, slots=1)
    off.queue_leftovers(0, [])
    finish(pop, off, *[s for s, _ in off.dispatch(now=0.0)], curved(3.0), now=1.0)
    propose(pop, off, 1)
    assert [t.prune for _, t in off.dispatch(now=1.0)] == [None]
    on = make_policy(pop, slots=1, pruning=PRUNING)
    on.queue_leftovers(0, [])
    finish(pop, on, *[s for s, _ in on.dispatch(now=0.0)], ok(3.0), now=1.0)  # the seed left no curve
    propose(pop, on, 2)
    assert [t.prune for _, t in on.dispatch(now=1.0)] == [None]


def test_a_pruned_child_counts_as_done_scores_nothing_and_frees_its_slot(pop):
    policy = make_policy(pop, strategy="greedy", slots=1, target=2, pruning=PRUNING)
    policy.queue_leftovers(2, [])
    policy.curve_seen(pop.seed().id, 0, "ok", CURVE)  # replayed from the archive on resume
    pop.record(pop.seed().id, ok(3.0), kind="noise", generation=0, **WHEN)
    policy.strategy.scored(pop.seed().id, None, 3.0)
    propose(pop, policy, 1)
    ((slot, task),) = policy.dispatch(now=0.0)
    assert task.prune is not None
    pruned = RunResult("pruned", reason="pruned at 40% of its budget", loss_curve=((0.4, 9.0),))
    assert finish(pop, policy, slot, pruned, now=4.0) is False  # no repair of a pruned child
    assert policy.children_done == 1 and policy.idle == deque([slot])
    assert task.genome_id not in policy.curves  # a cut-off curve is never a parent's yardstick
    assert policy.strategy.lines[0].incumbent == pop.seed().id


def test_paired_scores_are_seed_zero_evaluations_with_no_repeats_mid_run_and_the_leader_is_the_best(paired):
    pop, policy = paired, make_policy(paired, slots=1, target=12, confirm_top=0)
    pop.record(pop.seed().id, ok(3.0), kind="noise", generation=0, **WHEN)
    pop.record(pop.seed().id, ok(3.002, seed=1), kind="noise", generation=0, **WHEN)
    assert pop.fitness(pop.seed().id).mean == 3.0 and pop.noise_sigma() == pytest.approx(0.0014, abs=1e-4)
    for i in range(6):
        child = propose(pop, policy, i)
        ((slot, _),) = policy.dispatch(now=float(i))
        finish(pop, policy, slot, ok(2.999 - i / 1e4), now=i + 0.5)  # inside the noise band
    assert policy.dispatched["repeat"] == 0 and pop.best().id == child.genome_id


def run_children(pop, policy: Policy, scores: list[float]) -> list[Child]:
    """Children one at a time on one slot, each scoring the next of `scores` at seed 0."""
    children = []
    for i, score in enumerate(scores):
        children.append(propose(pop, policy, i))
        ((slot, _),) = policy.dispatch(now=float(i))
        finish(pop, policy, slot, ok(score), now=i + 1.0)
    return children


def test_the_top_by_search_score_and_the_seed_are_confirmed_at_fresh_seeds_and_the_confirmed_best_is_handed_over(
    paired,
):
    pop = paired
    policy = make_policy(pop, slots=1, target=180, confirm_top=2)  # 3 genomes x 3 seeds: 171 children left
    pop.record(pop.seed().id, ok(3.0), kind="noise", generation=0, **WHEN)
    assert policy.child_target() == 171
    children = run_children(pop, policy, [2.9 - i / 10000 for i in range(171)])
    lucky, runner_up = children[-1].genome_id, children[-2].genome_id
    assert pop.best().id == lucky and not pop.summary().best_confirmed
    confirmed = set()
    for _ in range(9):
        ((slot, task),) = policy.dispatch(now=30.0)
        confirmed.add((task.genome_id, task.seed))
        finish(pop, policy, slot, ok({lucky: 2.95, runner_up: 2.9}.get(task.genome_id, 3.0)), now=31.0)
    assert confirmed == {(g, s) for g in (lucky, runner_up, pop.seed().id) for s in CONFIRM_SEEDS}
    assert policy.finished() and policy.children_done == 171
    summary = pop.summary()
    assert pop.best().id == runner_up and summary.best_confirmed and summary.best_evaluations == 3
    assert summary.best_val_bpb == pytest.approx(2.9) and summary.seed_val_bpb == pytest.approx(3.0)


def test_with_a_wall_clock_limit_confirmation_starts_early_enough_to_finish_in_time(paired):
    pop = paired
    policy = make_policy(pop, slots=1, target=400, confirm_top=1, max_seconds=100.0)  # 6 confirmations
    pop.record(pop.seed().id, ok(3.0), kind="noise", generation=0, **WHEN)
    run_children(pop, policy, [2.9] * 3)  # one second each: a reserve of (6 + 1) x 1 s
    assert policy.check_limits(92.0, llm_cost=0.0) is None and policy.confirmation.state == "waiting"
    assert policy.check_limits(93.0, llm_cost=0.0) is None and policy.confirmation.state == "due"
    started = policy.dispatch(now=93.0)
    assert [t.kind for _, t in started] == ["confirm"] and policy.proposals_wanted(0) == 0


def test_a_run_too_small_to_afford_confirmation_has_none_and_baselines_never_confirm(pop):
    assert make_policy(pop, target=8).confirmation.state == "off"
    assert make_policy(pop, target=800).confirmation.top == 4
    assert make_policy(pop, strategy="parallel-greedy", target=800).confirmation.state == "off"


def test_a_greedy_child_scored_before_the_seed_stays_the_incumbent_only_if_it_beats_the_seed(pop):
    policy = make_policy(pop, strategy="parallel-greedy", slots=3)
    policy.queue_leftovers(0, [])
    propose(pop, policy, 1)
    slot = {f"{t.kind} {t.seed}": s for s, t in policy.dispatch(now=0.0)}
    assert set(slot) == {"noise 0", "noise 1", "child 0"}
    finish(pop, policy, slot["child 0"], ok(3.5), now=5.0)  # back before the seed's own seed-0 score
    finish(pop, policy, slot["noise 0"], ok(3.0), now=10.0)
    assert policy.strategy.pick(pop) == pop.seed().id
