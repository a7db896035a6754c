"""One simulated run: the real policy (evolve.policy) and strategy (evolve.strategies) driven by a
discrete-event clock over N virtual slots, against a landscape (benchmarks.landscape).

What is real: every scheduling and selection decision — the Policy (queues, noise evaluations, repeats,
limits, accounting), the strategies, the population's selection state (population.survivors.Survivors:
tournaments, survivors, the noise-gated best) and the offline operators' choice and perturbation of
knobs (mutators.offline.perturb and consistent, Mutators.choose_operator). What is simulated: training
(the landscape's score and cost), and the genome, which is its knob vector rather than train.py source:
the real hyperparam operator parses and checks the whole source (about 10 ms a child, half an hour of
the table), while the knob edits it makes are exactly these. A merge is the knob-level 3-way merge of
two parents over their common ancestor (a knob both changed takes the fitter parent's value, as in
mutators.merge); a transplant puts a donor's knob changes since that ancestor onto the best.
Proposals are instant (offline operators): a free slot never waits for one.
With pruning (SimConfig.pruning), a child the policy hands a prune rule is judged on the landscape's curve
as the trainer would judge it, and a pruned child costs the landscape's `pruned_cost` (start-up and the
budget it used; without one, that fraction of its whole cost) and scores nothing.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field

from evolve.confirm import CONFIRM_SHARE, DEFAULT_TOP, affordable_top
from evolve.policy import Limits, Policy, RunAborted
from evolve.proposals import Child, Failure
from evolve.strategies import make_strategy
from fitness.curves import PruneRule
from fitness.result import RunResult
from mutators import MutatorConfig, Mutators
from mutators.knobmerge import merge_values
from mutators.offline import MAX_TRIES, consistent, perturb
from population.messages import Fitness, Genome, PopulationConfig
from population.survivors import Survivors

FRESH_SEEDS = (1000, 1001, 1002)  # the pick is confirmed at training seeds the search never used
CHECKPOINTS = 20  # points of the best-so-far curve over the run's wall clock
PRUNED_TARGET = 4  # a pruned run's child target, times the unpruned one's: its wall clock stops it first


@dataclass(frozen=True)
class SimConfig:
    population: PopulationConfig = PopulationConfig()
    noise_repeats: int = 3
    repeat_share: float = 0.5
    pruning: PruneRule | None = None  # evolve.policy.Limits.pruning
    transplant_rate: float = MutatorConfig().transplant_rate  # the real run's default
    confirm_top: int = DEFAULT_TOP
    confirm_share: float = CONFIRM_SHARE  # evolve.confirm.affordable_top
    fresh_seeds: tuple[int, ...] = FRESH_SEEDS  # where each run's pick is confirmed


@dataclass
class History:
    strategy: str
    slots: int
    seed: int
    budget_seconds: float
    evaluations: list[tuple[float, str, str, int, float | None]] = field(default_factory=list)  # t, kind, id, seed, val
    children: int = 0
    pick: str = ""
    pick_knobs: dict = field(default_factory=dict)
    gain: float = math.nan  # seed's mean at FRESH_SEEDS minus the pick's
    true_gain: float = math.nan  # the same without noise (the landscape's mean)
    curve: list[tuple[float, float]] = field(default_factory=list)  # (wall seconds, true gain of the pick then)
    pruned: int = 0  # children stopped early on their curve
    false_prunes: int = 0  # of those, children whose val_bpb would have been the lowest seed-0 score yet
    lowest: float = math.inf  # the lowest seed-0 val_bpb so far (what a false prune would have beaten)
    operators: dict[str, int] = field(default_factory=dict)  # children proposed, by operator


class SimBoard:
    """The run's state for the policy (evolve.strategies.Board), in memory: genomes are knob vectors."""

    def __init__(self, seed_knobs: dict, config: PopulationConfig) -> None:
        self.knobs: dict[str, dict] = {}
        self.genomes: dict[str, Genome] = {}
        self.seen: set[tuple] = set()
        self._seed = self.add(seed_knobs, (), "seed", "seed genome")
        self.state = Survivors(self._seed.id, config)

    def add(self, knobs: dict, parents: tuple[str, ...], operator: str, description: str) -> Genome:
        gid = f"g{len(self.genomes):06d}"
        genome = Genome(gid, parents, operator, description, gid, 0, "")
        self.genomes[gid], self.knobs[gid] = genome, knobs
        self.seen.add(tuple(sorted(knobs.items())))
        return genome

    def is_new(self, knobs: dict) -> bool:
        return tuple(sorted(knobs.items())) not in self.seen

    def record(self, genome_id: str, kind: str, seed: int, result: RunResult) -> None:
        val = result.val_bpb if result.ok else None
        counted = kind == "child" and result.status != "interrupted"
        self.state.apply(genome_id, val, 0, counted, seed, confirm=kind == "confirm")

    def seed(self) -> Genome:
        return self._seed

    def genome(self, genome_id: str) -> Genome:
        return self.genomes[genome_id]

    def fitness(self, genome_id: str) -> Fitness:
        return self.state.fitness(genome_id)

    def best(self) -> Genome | None:
        pick = self.state.pick()
        return self.genomes[pick] if pick else None

    def select_parents(self, k_parents: int, rng: random.Random) -> list[Genome]:
        return [self.genomes[g] for g in self.state.select_parents(k_parents, rng)]

    def repeat_candidates(self, n: int) -> list[str]:
        return self.state.repeat_candidates(n)

    def unrelated(self, genome_id: str) -> list[Genome]:
        """The survivors that are neither ancestors nor descendants of `genome_id`, best first."""
        mine = set(self.ancestors(genome_id))
        ranked = (self.genomes[c.id] for c in self.state.ranked() if c.id not in mine)
        return [g for g in ranked if genome_id not in self.ancestors(g.id)]

    def confirm_candidates(self, n: int, seeds: int) -> list[str]:
        return self.state.confirm_candidates(n, seeds)

    def ancestors(self, genome_id: str) -> list[str]:
        """`genome_id` and every ancestor, nearest first (breadth first over the parents)."""
        order, queue, seen = [], [genome_id], {genome_id}
        while queue:
            g = queue.pop(0)
            order.append(g)
            for p in self.genomes[g].parents:
                if p not in seen:
                    seen.add(p)
                    queue.append(p)
        return order


class SimProposer:
    """Proposals as evolve.proposals.Proposer makes them, instantly: parents from the strategy, then an
    offline operator. Each proposal has two generators seeded by (run seed, proposal index): one for the
    parents, one for the operator and its edit, so that strategies given the same parent at the same
    proposal index make the same child (common random numbers across strategies)."""

    def __init__(self, board: SimBoard, seed: int, transplant_rate: float) -> None:
        self.board, self.seed, self.index = board, seed, 0
        config = MutatorConfig(mode="offline", transplant_rate=transplant_rate)
        self.mutators = Mutators(config, api_key_from_env=False)

    def propose(self, pick, pick_transplant=lambda rng: []) -> Child | Failure:
        rng = random.Random(self.seed * 1_000_003 + self.index)
        parent_rng = random.Random(f"parents {self.seed} {self.index}")
        self.index += 1
        pair = pick_transplant(rng) if self.mutators.wants_transplant(rng) else []
        if pair:
            return self._transplant(*(p.id for p in pair))
        parents = pick(parent_rng) or [self.board.seed()]
        distinct = list({p.id: p for p in parents}.values())
        op = self.mutators.choose_operator(rng, len(distinct))
        chosen = distinct[:2] if op == "merge" else distinct[:1]
        ids = tuple(p.id for p in chosen)
        knobs, why = self._merge(*ids) if op == "merge" else self._hyperparam(ids[0], rng)
        if knobs is None:
            return Failure(op, "conflict" if op == "merge" else "duplicate", why, ids)
        genome = self.board.add(knobs, ids, op, why)
        return Child(genome.id, genome.source, op, why, None, ids)

    def _hyperparam(self, parent: str, rng: random.Random) -> tuple[dict | None, str]:
        """mutators.offline.hyperparam's loop over knob values (one knob, sometimes two)."""
        knobs = self.board.knobs[parent]
        names = list(knobs)
        for _ in range(MAX_TRIES):
            chosen = rng.sample(names, 1 if rng.random() < 0.7 else 2)
            changes = {n: perturb(n.split("[")[0], knobs[n], rng) for n in chosen}
            if any(new == knobs[n] for n, new in changes.items()):
                continue
            child = knobs | changes
            if consistent({n.split("[")[0]: v for n, v in child.items()}) is None and self.board.is_new(child):
                return child, ", ".join(f"{n} {knobs[n]!r} -> {v!r}" for n, v in changes.items())
        return None, f"no valid new child in {MAX_TRIES} tries"

    def _merge(self, a: str, b: str) -> tuple[dict | None, str]:
        """mutators.merge's knob-level merge: a knob both changed takes the fitter parent's value."""
        fa, fb = self.board.fitness(a), self.board.fitness(b)
        first, second = (b, a) if fb.count and (not fa.count or fb.mean < fa.mean) else (a, b)
        child = self._knob_merge(first, second)
        if child is None:
            return None, "the merge gives no new valid child"
        return child, f"merge of {a} and {b}"

    def _transplant(self, best: str, donor: str) -> Child | Failure:
        """mutators.merge.transplant: the donor's knob changes since its common ancestor with the best,
        onto the best (the best keeps a knob both changed)."""
        child = self._knob_merge(best, donor)
        if child is None:
            return Failure("transplant", "duplicate", "the transplant gives no new valid child", (best,))
        genome = self.board.add(child, (best,), "transplant", f"transplant from {donor}")
        return Child(genome.id, genome.source, "transplant", genome.description, None, (best,))

    def _knob_merge(self, first: str, second: str) -> dict | None:
        mine = set(self.board.ancestors(first))
        base = next(g for g in self.board.ancestors(second) if g in mine)
        child, _ = merge_values(*(self.board.knobs[g] for g in (base, first, second)))
        if not self.board.is_new(child) or consistent({n.split("[")[0]: v for n, v in child.items()}):
            return None
        return child


def run_strategy(
    strategy: str, landscape, slots: int, children: int, seed: int, config: SimConfig = SimConfig()
) -> History:
    """One run of `strategy` with `slots` virtual slots, stopped at `children` children or at the wall clock
    a run of that many children (and the noise evaluations) takes at full width, whichever comes first. With
    pruning only that wall clock stops it: the slot time pruned children leave goes to more children."""
    board = SimBoard(landscape.seed_genome(), _with_seed(config.population, seed))
    seed_cost = landscape.evaluate(landscape.seed_genome(), 0)[1]
    budget = math.ceil((children + config.noise_repeats) / slots) * seed_cost
    target = children if config.pruning is None else PRUNED_TARGET * children
    limits = Limits(target, config.population.population_size, config.noise_repeats, 0, budget, math.inf,
                    repeat_share=config.repeat_share, pruning=config.pruning,
                    confirm_top=affordable_top(config.confirm_top, children, share=config.confirm_share),
                    confirm_share=config.confirm_share)  # fmt: skip
    # the confirmation a run of `children` children affords: a pruned run's target is raised only so that
    # its clock, not its count, stops it
    chosen = make_strategy(strategy, board.seed().id, slots)
    policy = Policy(limits, chosen, board, slots, children_done=0, now=0.0)
    for slot in range(slots):
        policy.slot_ready(slot)
    policy.queue_leftovers(0, [])
    history = History(strategy, slots, seed, budget)
    _drive(policy, board, SimProposer(board, seed, config.transplant_rate), landscape, history)
    _score(history, board, chosen.pick(board), landscape, config.fresh_seeds)
    return history


def _drive(policy: Policy, board: SimBoard, proposer: SimProposer, landscape, history: History) -> None:
    events: list = []
    now, seq, mark = 0.0, 0, 0
    strategy = policy.strategy
    while True:
        for _ in range(policy.proposals_wanted(0)):
            if not strategy.can_propose():
                break
            item = proposer.propose(
                lambda rng: strategy.parents(board, rng), lambda rng: strategy.transplant_parents(board, rng)
            )
            policy.child_ready(item) if isinstance(item, Child) else policy.proposal_failed(item)
            if isinstance(item, Child):
                history.operators[item.operator] = history.operators.get(item.operator, 0) + 1
        policy.check_limits(now, 0.0)
        for slot, task in policy.dispatch(now):
            result, would_be = _evaluate(landscape, board.knobs[task.genome_id], task)
            heapq.heappush(events, (now + result.total_seconds, seq, slot, result, would_be))
            seq += 1
        if policy.finished():
            return
        if not events:
            raise RunAborted(f"{strategy.name}: nothing to run and nothing in flight")
        now, _, slot, result, would_be = heapq.heappop(events)
        while mark < CHECKPOINTS and now >= (mark + 1) * history.budget_seconds / CHECKPOINTS:
            mark += 1
            history.curve.append(
                (mark * history.budget_seconds / CHECKPOINTS, _true_gain(board, strategy.pick(board), landscape))
            )
        task = policy.release(slot, now)
        board.record(task.genome_id, task.kind, task.seed, result)
        policy.recorded(task, result)
        history.evaluations.append((now, task.kind, task.genome_id, task.seed, result.val_bpb if result.ok else None))
        _count_prunes(history, task.seed, result, would_be)
        history.children = policy.children_done


def _count_prunes(history: History, seed: int, result: RunResult, would_be: float | None) -> None:
    if result.status == "pruned":
        history.pruned += 1
        history.false_prunes += int(would_be is not None and would_be < history.lowest)
    elif result.ok and seed == 0:
        history.lowest = min(history.lowest, result.val_bpb)


def _evaluate(landscape, knobs: dict, task) -> tuple[RunResult, float | None]:
    """The landscape's evaluation as the trainer would return it: pruned where the task's rule says so at
    its point of the curve (the curve up to there is all the trainer had seen); and the val_bpb it had."""
    val_bpb, cost, curve = landscape.evaluate(knobs, task.seed)
    rule = task.prune
    if rule is not None and val_bpb is not None:
        # the trainer asks the rule after each point: it first can say prune at the first point at or past
        # `at` (a real curve's points, means over 1/200 of the budget, rarely fall on `at` itself)
        reached = next((i for i, point in enumerate(curve) if point[0] >= rule.at - 1e-9), len(curve) - 1)
        seen = tuple(curve[: reached + 1])
        reason = rule.verdict(seen)
        if reason:
            paid = landscape.pruned_cost(knobs, rule.at) if hasattr(landscape, "pruned_cost") else cost * rule.at
            return RunResult("pruned", reason=reason, total_seconds=paid, loss_curve=seen), val_bpb
    if val_bpb is not None and math.isfinite(val_bpb):
        return RunResult("ok", val_bpb=val_bpb, total_seconds=cost, loss_curve=tuple(curve)), val_bpb
    return RunResult("crash", reason="failed in the landscape", total_seconds=cost), None


def _true_gain(board: SimBoard, pick: str | None, landscape) -> float:
    """The gain of a pick without noise (NaN for a landscape with no `mean`)."""
    if not hasattr(landscape, "mean"):
        return math.nan
    pick = pick or board.seed().id
    return landscape.mean(board.knobs[board.seed().id]) - landscape.mean(board.knobs[pick])


def _score(history: History, board: SimBoard, pick: str | None, landscape, seeds: tuple[int, ...]) -> None:
    pick = pick or board.seed().id
    seed_knobs, knobs = board.knobs[board.seed().id], board.knobs[pick]

    def fresh(k: dict) -> float:
        values = [landscape.evaluate(k, s)[0] for s in seeds]
        return math.inf if None in values else sum(values) / len(values)

    history.pick, history.pick_knobs = pick, knobs
    history.gain = fresh(seed_knobs) - fresh(knobs)
    history.true_gain = _true_gain(board, pick, landscape)


def _with_seed(config: PopulationConfig, seed: int) -> PopulationConfig:
    import dataclasses

    return dataclasses.replace(config, selection_seed=seed)
