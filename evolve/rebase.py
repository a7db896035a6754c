"""Rebasing: an LLM child proposed ahead whose parent has since been overtaken moves onto the new best.

An LLM proposal takes tens of seconds and children are proposed ahead of free slots (`--lookahead`), so
a child can wait in the queue while the run finds a new best. Its idea was written against a parent the
run has moved past. Before it trains it is rebased: its changes against its parent are applied to the
new best by a 3-way merge (mutators.merge.rebase: knobs by name, the rest by git merge-file, the child's
value where both changed a knob). The result is a new genome (operator `rebase`; parents: the best, then
the original) that carries the original's LLM spend; the original is never trained (a resumed run skips
a genome another was built from: population.Population.unevaluated). Where the merge fails (a conflict,
nothing left to change, a duplicate) the original trains as proposed: its tokens are paid for.

Only LLM children are rebased (evolve.policy.Policy decides which: its `stale` list), since an offline
proposal is cheap and its parents are picked when a slot frees.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import ray

from evolve.policy import Task
from evolve.proposals import PROPOSAL_FAILURES, Child, Proposer
from mutators.merge import rebase
from mutators.messages import ParentInfo
from population.messages import Genome


@dataclass(frozen=True)
class Rebased:
    """What became of a stale child: its rebased successor, or None and why (then it trains as proposed)."""

    original: Task
    child: Child | None
    reason: str = ""


def start(proposer: Proposer, task: Task, onto: Genome, generation: int) -> None:
    """Rebase `task`'s child onto `onto` in a mutator thread; the Rebased comes back from proposer.finished()."""
    proposer.futures.add(proposer.pool.submit(_rebase, proposer, task, onto, generation))


def _rebase(proposer: Proposer, task: Task, onto: Genome, generation: int) -> Rebased:
    try:
        population = proposer.population
        parent = ray.get(population.genome.remote(task.parent))
        original = ParentInfo(task.genome_id, task.source, task.description)
        proposal = rebase(
            original, ParentInfo(onto.id, onto.source), parent.source, proposer.is_duplicate, proposer.profile
        )
        if not proposal.ok:
            return Rebased(task, None, f"{proposal.status}: {proposal.reason}")
        draft, meta = proposal.draft, {}
        if task.llm is not None:  # the original's spend moves with its idea (billed on the rebased child's row)
            meta = {"model": task.llm.model, "llm": dataclasses.asdict(task.llm)}
        genome, is_new = proposer.add(draft, generation, meta)
        if not is_new:
            return Rebased(task, None, f"duplicate: same source as {genome.short_id}")
        child = Child(genome.id, genome.source, genome.operator, genome.description, task.llm, genome.parents, onto.id)
        return Rebased(task, child)
    except PROPOSAL_FAILURES as e:  # the original still trains
        return Rebased(task, None, f"{type(e).__name__}: {e}")
