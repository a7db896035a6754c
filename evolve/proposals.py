"""Proposals: tournament-selected parents in, committed children out, prepared ahead of need.

The mutator workers are threads of the driver behind the mutators' own concurrency cap: an LLM call
waits on the network, not on a core, and keeping the calls in the driver keeps the API key in this
one process (it never travels to a Ray worker or another node). Parents are picked in the main
thread; the operator and the commit run in a worker thread, so no GPU waits for an LLM reply.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import ray

from mutators import Context, LLMUsage, Mutators, ParentInfo, Proposal
from population import InvalidGenome
from population.messages import Genome

log = logging.getLogger(__name__)

DIGEST_LINES = 24  # recent outcomes shown to the LLM
LINEAGE_LINES = 12  # ancestor steps shown to the LLM


@dataclass(frozen=True)
class Child:
    """A committed genome waiting for a trainer."""

    genome_id: str
    source: str
    operator: str
    description: str
    llm: dict | None  # LLM usage billed to this child (failed proposals' usage included)
    parents: tuple[str, ...] = ()


@dataclass(frozen=True)
class Failure:
    operator: str
    status: str
    reason: str
    parents: tuple[str, ...] = ()  # the parents the proposal was asked to start from


@dataclass(frozen=True)
class Outcome:
    """What the proposer remembers of a finished evaluation, for the next prompts."""

    genome_id: str
    description: str
    status: str
    reason: str
    val_bpb: float | None
    num_steps: int
    num_params: int
    log_tail: str


class Proposer:
    def __init__(
        self,
        population,  # PopulationActor handle
        mutators: Mutators,
        *,
        program: str,
        profile: str,
        seed_genome: Genome,
        rng_seed: int,
        start_index: int,
    ) -> None:
        self.population = population
        self.mutators = mutators
        self.program, self.profile = program, profile
        self.seed_genome = seed_genome
        self.rng_seed = rng_seed
        self.index = start_index  # proposals started over the whole run: seeds each one's generator
        threads = mutators.config.max_concurrency if mutators.llm_available else 2
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="mutator")
        self.futures: set[Future] = set()
        self.outcomes: dict[str, Outcome] = {}
        self.recent: deque[str] = deque(maxlen=DIGEST_LINES)
        self.unbilled: LLMUsage | None = None  # failed proposals' LLM usage, billed to the next child
        self._carry_lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return len(self.futures)

    def start(self, generation: int, pick: Callable[[random.Random], list[Genome]]) -> None:
        """Begin one proposal: parents now (`pick`: the strategy's choice), operator and commit in a thread."""
        rng = random.Random(self.rng_seed * 1_000_003 + self.index)
        self.index += 1
        parents = pick(rng) or [self.seed_genome]
        distinct = list({p.id: p for p in parents}.values())
        op = self.mutators.choose_operator(rng, len(distinct))
        chosen = distinct[:2] if op in ("crossover", "merge") else distinct[:1]
        future = self.pool.submit(self._propose, op, chosen, generation, rng)
        self.futures.add(future)

    def start_repair(self, child: Genome, error_tail: str, generation: int) -> bool:
        """Ask the LLM to fix a crashed child; False when the LLM is off."""
        if not self.mutators.llm_available or not self.mutators.budget_left():
            return False
        self.futures.add(self.pool.submit(self._repair, child, error_tail, generation))
        return True

    def finished(self) -> list[Child | Failure]:
        """The proposals that completed since the last call (children are committed already)."""
        done = [f for f in self.futures if f.done()]
        self.futures.difference_update(done)
        return [f.result() for f in done]

    def remember(self, outcome: Outcome, parent_val_bpb: float | None) -> None:
        self.outcomes[outcome.genome_id] = outcome
        if outcome.status == "ok" and outcome.val_bpb is not None:
            change = "" if parent_val_bpb is None else f", {outcome.val_bpb - parent_val_bpb:+.4f} vs parent"
            self.recent.append(f"- kept score {outcome.val_bpb:.4f}{change}: {outcome.description}")
        else:
            self.recent.append(f"- FAILED ({outcome.status}: {outcome.reason[:120]}): {outcome.description}")

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    # --- in a mutator thread ----------------------------------------------------------------------
    def _propose(self, op: str, parents: list[Genome], generation: int, rng: random.Random) -> Child | Failure:
        try:
            ancestor = None
            if len(parents) == 2:
                base = ray.get(self.population.merge_base.remote(parents[0].id, parents[1].id))
                ancestor = base.source if base else None
            context = self._context(parents[0])
            infos = [self._info(p) for p in parents]
            proposal = self.mutators.propose(op, infos, ancestor, context, rng, self._is_duplicate)
            return self._commit(proposal, generation, tuple(p.id for p in parents))
        except Exception as e:  # a bug in one proposal must not stop the run: it is logged and counted
            log.exception("proposal %s failed", op)
            return Failure(op, "error", f"{type(e).__name__}: {e}", tuple(p.id for p in parents))

    def _repair(self, child: Genome, error_tail: str, generation: int) -> Child | Failure:
        try:
            proposal = self.mutators.repair(self._info(child), error_tail, self._context(child), self._is_duplicate)
            return self._commit(proposal, generation, (child.id,))
        except Exception as e:  # as in _propose
            log.exception("repair of %s failed", child.short_id)
            return Failure("repair", "error", f"{type(e).__name__}: {e}", (child.id,))

    def _commit(self, proposal: Proposal, generation: int, asked: tuple[str, ...]) -> Child | Failure:
        usage = self._bill(proposal.usage)
        if not proposal.ok:
            self._carry(usage)
            return Failure(proposal.operator, proposal.status, proposal.reason, asked)
        draft = proposal.draft
        meta = {"changes": list(draft.changes)}
        if usage is not None:
            meta["model"] = usage.model
        try:
            genome, is_new = ray.get(
                self.population.add.remote(
                    draft.source, draft.parent_ids, draft.operator, draft.description, generation, meta
                )
            )
        except InvalidGenome as e:
            self._carry(usage)
            return Failure(draft.operator, "invalid", str(e), asked)
        if not is_new:
            self._carry(usage)
            return Failure(draft.operator, "duplicate", f"same source as {genome.short_id}", asked)
        llm = None
        if usage is not None:
            llm = dict(
                model=usage.model,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost_usd=usage.cost_usd,
            )
        return Child(genome.id, genome.source, genome.operator, genome.description, llm, genome.parents)

    def _bill(self, usage: LLMUsage | None) -> LLMUsage | None:
        """This proposal's usage plus what failed proposals left unbilled (threads share the carry)."""
        with self._carry_lock:
            carried, self.unbilled = self.unbilled, None
        if carried is None:
            return usage
        return carried if usage is None else usage + carried

    def _carry(self, usage: LLMUsage | None) -> None:
        if usage is None:
            return
        with self._carry_lock:
            self.unbilled = usage if self.unbilled is None else self.unbilled + usage

    def _is_duplicate(self, source: str) -> bool:
        return ray.get(self.population.has_source.remote(source))

    def _info(self, genome: Genome) -> ParentInfo:
        outcome = self.outcomes.get(genome.id)
        fitness = ray.get(self.population.fitness.remote(genome.id))
        score = fitness.mean if fitness.count else (outcome.val_bpb if outcome else None)
        return ParentInfo(genome.id, genome.source, genome.description, score)

    def _context(self, parent: Genome) -> Context:
        if not self.mutators.llm_available:  # the offline operators read only the profile
            return Context(program=self.program, profile=self.profile)
        outcome = self.outcomes.get(parent.id)
        metrics, tail = "", ""
        if outcome is not None:
            score = f"val_bpb {outcome.val_bpb:.4f}" if outcome.val_bpb is not None else outcome.status
            metrics = f"{score}, {outcome.num_steps} steps, {outcome.num_params / 1e6:.2f}M params"
            tail = outcome.log_tail
        lineage = ray.get(self.population.lineage.remote(parent.id))
        notes = [
            f"- {s.operator}: {s.description} (val_bpb {s.val_bpb:.4f}, {s.delta:+.4f} vs its parent)"
            for s in lineage.path[-LINEAGE_LINES:]
        ]
        return Context(
            program=self.program,
            profile=self.profile,
            parent_metrics=metrics,
            log_tail=tail,
            lineage_notes="\n".join(notes),
            archive_digest="\n".join(self.recent),
        )
