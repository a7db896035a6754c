"""Proposals: tournament-selected parents in, committed children out, prepared ahead of need.

The mutator workers are threads of the driver behind the mutators' own concurrency cap: an LLM call
waits on the network, not on a core, and keeping the calls in the driver keeps the API key in this
one process (it never travels to a Ray worker or another node; `session.start_ray` also takes it out
of the environment Ray's processes inherit). Parents are picked in the main thread; the operator and
the commit run in a worker thread, so no GPU waits for an LLM reply.

What the LLM is told is rebuilt from the archive (evolve.notes) for each proposal, so it is the same
after a resume. Each LLM conversation is kept in `<run>/llm/` (one JSON file per proposal: the messages,
the replies, the usage, the outcome), with the API key redacted should it ever appear.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import ray

from evolve import notes
from mutators import Context, Draft, LLMUsage, Mutators, ParentInfo, Proposal
from mutators.context import fence
from mutators.merge import MergeError
from mutators.prompting import unified_diff
from population import InvalidGenome
from population.messages import Genome, LLMSpend

log = logging.getLogger(__name__)

# What can fail one proposal without anything being wrong with the run: a call to the population actor
# (RayError: the actor refused or raised), the disk (a transcript, git merge-file's temp files: OSError),
# a merge git could not run (MergeError), a reply or source our checks refuse (ValueError: EditError,
# InvalidGenome). Anything else is a bug in our code and stops the run with its traceback.
PROPOSAL_FAILURES = (ray.exceptions.RayError, OSError, MergeError, ValueError)

LINEAGE_LINES = 12  # ancestor steps shown to the LLM
MAX_DIFF_CHARS = 3000  # an inspiration's diff against the seed, cut beyond this


@dataclass(frozen=True)
class Child:
    """A committed genome waiting for a trainer."""

    genome_id: str
    source: str
    operator: str
    description: str
    llm: LLMSpend | None  # LLM usage billed to this child (failed proposals' usage included)
    parents: tuple[str, ...] = ()
    best_at_pick: str | None = None  # the run's best when its parents were picked (evolve.rebase)


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
        budget_seconds: float = 0.0,
        machine: str = "",
        log_dir: Path | None = None,  # where each LLM conversation is kept; None: nowhere
    ) -> None:
        self.population = population
        self.mutators = mutators
        self.program, self.profile = program, profile
        self.budget_seconds, self.machine, self.log_dir = budget_seconds, machine, log_dir
        self.seed_genome = seed_genome
        self.rng_seed = rng_seed
        self.index = start_index  # proposals started over the whole run: seeds each one's generator
        threads = mutators.config.max_concurrency if mutators.llm_available else 2
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="mutator")
        self.futures: set[Future] = set()
        self.outcomes: dict[str, Outcome] = {}  # this session's (log tails are not in the archive)
        self.unbilled: LLMUsage | None = None  # failed proposals' LLM usage, billed to the next child
        self._carry_lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return len(self.futures)

    def start(
        self,
        generation: int,
        pick: Callable[[random.Random], list[Genome]],
        pick_transplant: Callable[[random.Random], list[Genome]] = lambda rng: [],
        best: str | None = None,
    ) -> None:
        """Begin one proposal: parents now (`pick`: the strategy's choice; `pick_transplant`: [best, donor]
        for a transplant, or []), operator and commit in a thread; `best`: the run's best now."""
        rng = random.Random(self.rng_seed * 1_000_003 + self.index)
        self.index += 1
        pair = pick_transplant(rng) if self.mutators.wants_transplant(rng) else []
        if pair:
            op, chosen = "transplant", pair
        else:
            parents = pick(rng) or [self.seed_genome]
            distinct = list({p.id: p for p in parents}.values())
            op = self.mutators.choose_operator(rng, len(distinct))
            chosen = distinct[:2] if op in ("crossover", "merge") else distinct[:1]
        future = self.pool.submit(self._propose, op, chosen, generation, rng, best)
        self.futures.add(future)

    def start_repair(self, child: Genome, error_tail: str, generation: int) -> bool:
        """Ask the LLM to fix a crashed child; False when the LLM is off, out of budget or paused."""
        if not self.mutators.llm_available or not self.mutators.budget_left() or self.mutators.llm_paused:
            return False
        self.futures.add(self.pool.submit(self._repair, child, error_tail, generation))
        return True

    def finished(self) -> list[Child | Failure]:
        """The proposals that completed since the last call (children are committed already)."""
        done = [f for f in self.futures if f.done()]
        self.futures.difference_update(done)
        return [f.result() for f in done]

    def remember(self, outcome: Outcome, parent_val_bpb: float | None) -> None:
        """A finished evaluation (already in the archive, where the notes are rebuilt from)."""
        self.outcomes[outcome.genome_id] = outcome

    def close(self, wait: bool = True) -> None:
        """Cancel proposals not started; with `wait`, let those under way finish first, so that what they
        cost is kept (a child is committed with it, a failure leaves it for `take_unbilled`)."""
        self.pool.shutdown(wait=wait, cancel_futures=True)

    def take_unbilled(self) -> LLMSpend | None:
        """Failed proposals' usage not yet billed to a child (and forget it)."""
        with self._carry_lock:
            carried, self.unbilled = self.unbilled, None
        return spend(carried)

    # --- in a mutator thread ----------------------------------------------------------------------
    def _propose(
        self, op: str, parents: list[Genome], generation: int, rng: random.Random, best: str | None = None
    ) -> Child | Failure:
        try:
            ancestor = None
            if len(parents) == 2:
                base = ray.get(self.population.merge_base.remote(parents[0].id, parents[1].id))
                ancestor = base.source if base else None
            context = self._context(parents, rng)
            infos = [self._info(p) for p in parents]
            proposal = self.mutators.propose(op, infos, ancestor, context, rng, self.is_duplicate)
            return self._commit(proposal, generation, tuple(p.id for p in parents), rng.getrandbits(32), best)
        except PROPOSAL_FAILURES as e:  # one proposal's failure is counted (its run goes on); a bug is not caught
            log.exception("proposal %s failed", op)
            return Failure(op, "error", f"{type(e).__name__}: {e}", tuple(p.id for p in parents))

    def _repair(self, child: Genome, error_tail: str, generation: int) -> Child | Failure:
        try:
            rng = random.Random(child.id)
            context = self._context([child], rng)
            proposal = self.mutators.repair(self._info(child), error_tail, context, self.is_duplicate)
            return self._commit(proposal, generation, (child.id,), rng.getrandbits(32))
        except PROPOSAL_FAILURES as e:  # as in _propose
            log.exception("repair of %s failed", child.short_id)
            return Failure("repair", "error", f"{type(e).__name__}: {e}", (child.id,))

    def _commit(
        self, proposal: Proposal, generation: int, asked: tuple[str, ...], tag: int, best: str | None = None
    ) -> Child | Failure:
        result = self._add(proposal, generation, asked, best)
        self._keep_transcript(proposal, result, tag)
        return result

    def _add(self, proposal: Proposal, generation: int, asked: tuple[str, ...], best: str | None) -> Child | Failure:
        usage = self._bill(proposal.usage)
        if not proposal.ok:
            self._carry(usage)
            return Failure(proposal.operator, proposal.status, proposal.reason, asked)
        draft = proposal.draft
        meta = {}
        if usage is not None:  # kept with the genome too: billed from here if no evaluation of it is recorded
            meta["model"], meta["llm"] = usage.model, usage.record()
        try:
            genome, is_new = self.add(draft, generation, meta)
        except InvalidGenome as e:
            self._carry(usage)
            return Failure(draft.operator, "invalid", str(e), asked)
        if not is_new:
            self._carry(usage)
            return Failure(draft.operator, "duplicate", f"same source as {genome.short_id}", asked)
        llm = spend(usage)
        return Child(genome.id, genome.source, genome.operator, genome.description, llm, genome.parents, best)

    def add(self, draft: Draft, generation: int, meta: dict) -> tuple[Genome, bool]:
        """Commit `draft` (the population refuses an invalid one): the genome, and False if it existed."""
        added = self.population.add.remote(
            draft.source, draft.parent_ids, draft.operator, draft.description, generation, meta, changes=draft.changes
        )
        return ray.get(added)

    def _keep_transcript(self, proposal: Proposal, result: Child | Failure, tag: int) -> None:
        """<run>/llm/<operator>-<tag>.json: the conversation, its usage and what came of it."""
        if self.log_dir is None or not proposal.transcript:
            return
        usage = proposal.usage
        record = dict(
            operator=proposal.operator,
            outcome=result.genome_id if isinstance(result, Child) else f"{result.status}: {result.reason}",
            usage=None if usage is None else {**usage.__dict__, "prompt_tokens": usage.prompt_tokens},
            messages=list(proposal.transcript),
        )
        self.log_dir.mkdir(exist_ok=True)
        text = self.mutators.redact(json.dumps(record, indent=1, default=str))
        (self.log_dir / f"{proposal.operator}-{tag:08x}.json").write_text(text)

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

    def is_duplicate(self, source: str) -> bool:
        return ray.get(self.population.has_source.remote(source))

    def _info(self, genome: Genome) -> ParentInfo:
        fitness = ray.get(self.population.fitness.remote(genome.id))
        return ParentInfo(genome.id, genome.source, genome.description, fitness.mean if fitness.count else None)

    def _context(self, parents: list[Genome], rng: random.Random) -> Context:
        if not self.mutators.llm_available:  # the offline operators read only the profile
            return Context(program=self.program, profile=self.profile)
        parent = parents[0]
        table = notes.standings(ray.get(self.population.archive.remote()))
        sigma = ray.get(self.population.noise_sigma.remote())
        mine = table.get(parent.id)
        outcome = self.outcomes.get(parent.id)
        lineage = ray.get(self.population.lineage.remote(parent.id))
        steps = [
            f"- {s.operator}: {s.description} (val_bpb {s.val_bpb:.4f}, {s.delta:+.4f} vs its parent)"
            for s in lineage.path[-LINEAGE_LINES:]
        ]
        seed = table.get(self.seed_genome.id)
        return Context(
            program=self.program,
            profile=self.profile,
            budget=notes.budget_text(self.budget_seconds, self.machine, mine),
            noise=notes.noise_text(sigma, seed.n if seed else 0),
            parent_metrics=self._metrics(parents, table, sigma),
            log_tail=outcome.log_tail if outcome else "",
            lineage_notes="\n".join(steps),
            inspirations=self._inspirations(table, {p.id for p in parents}, rng),
            ledger=notes.ledger_text(table, sigma, self.seed_genome.id),
        )

    def _metrics(self, parents: list[Genome], table: dict, sigma: float | None) -> str:
        """The parent's standing; for two parents, each one's, named (A is the one edits apply to)."""
        lines = [notes.metrics_text(table[p.id], sigma) if p.id in table else "not evaluated yet" for p in parents]
        if len(parents) == 1:
            return lines[0] if parents[0].id in table else ""
        return "\n".join(f"- {name} ({p.short_id}): {line}" for name, p, line in zip("AB", parents, lines, strict=True))

    def _inspirations(self, table: dict, exclude: set[str], rng: random.Random) -> str:
        parts = []
        for s in notes.pick_inspirations(table, exclude | {self.seed_genome.id}, rng):
            source = ray.get(self.population.genome.remote(s.genome_id)).source
            diff = unified_diff(self.seed_genome.source, source, ("seed", s.genome_id[:7]))
            diff = diff if len(diff) <= MAX_DIFF_CHARS else diff[:MAX_DIFF_CHARS] + "\n[... diff cut]"
            head = f"### {s.genome_id[:7]} ({s.operator}, val_bpb {s.mean:.4f}, n={s.n}): {s.description}"
            parts.append(f"{head}\n{fence(diff, 'diff')}")
        return "\n\n".join(parts)


def add_llm(a: LLMSpend | None, b: LLMSpend | None) -> LLMSpend | None:
    """Two proposals' spend as one (tokens and dollars summed)."""
    return a or b if a is None or b is None else a + b


def spend(usage: LLMUsage | None) -> LLMSpend | None:
    """The mutators' usage as the population records it."""
    return None if usage is None else LLMSpend.from_record(usage.record())
