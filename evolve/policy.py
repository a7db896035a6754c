"""The run's policy: every decision of the scheduling loop, as plain Python with the clock passed in.

What a free slot runs next, in priority order: evaluations of the seed that measure the noise level;
children re-queued after their worker died, or left unevaluated by a stopped run; repeats that confirm
a would-be best (evolve only, at most `repeat_share` per child started); fresh children; at the end, the
top few confirmed at fresh seeds (evolve.confirm). It also keeps the accounting (children done,
generations, slot time), the limits (target, --max-hours, --max-llm-cost),
retries of a task whose worker died, retirement of a slot that keeps dying, the abort after too many
failed proposals, and what Ctrl-C leaves in flight. Who the parents are is the strategy's (evolve.strategies).

Three drivers: the Ray loop (evolve.orchestrator), the search simulator (benchmarks.simulate) and the
in-process tests. None of this reads a clock, touches Ray or prints.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque

from evolve.confirm import Confirmation, affordable_top
from evolve.strategies import Board, Strategy
from evolve.tasks import Limits, RunAborted, Running, Task
from fitness.curves import Curve, PruneRule
from fitness.result import RunResult
from population.messages import Genome, LLMSpend

MAX_PROPOSAL_FAILURES = 50  # in a row: the mutators can find nothing new, so the run stops
MAX_SLOT_DEATHS = 3  # in a row, without a finished start-up in between: the slot is retired


class Policy:
    def __init__(
        self, limits: Limits, strategy: Strategy, board: Board, slots: int, *, children_done: int, now: float
    ) -> None:
        self.limits, self.strategy, self.board = limits, strategy, board
        self.seed_id = board.seed().id
        self.idle: deque[int] = deque()  # slots ready for work
        self.deaths = [0] * slots  # per slot, in a row
        self.inflight: dict[int, Running] = {}  # by slot
        self.urgent: deque[Task] = deque()  # noise, retries, unevaluated children of a stopped run
        self.ready: deque[Task] = deque()  # fresh children
        self.stale: list[Task] = []  # LLM children whose parent was overtaken, for the driver to rebase
        self.rebasing: dict[str, Task] = {}  # ...being rebased (evolve.rebase), by genome id
        self.children_done = children_done
        self.children_at_start = children_done
        self.stop_reason: str | None = None
        self.proposal_failures = 0
        self.started = now
        self.busy_seconds = 0.0  # slot time spent on finished evaluations this session
        self.evaluations = 0  # finished this session
        self.dispatched = {"child": 0, "repeat": 0}  # started this session, by kind
        self.curves: dict[str, Curve] = {}  # each genome's loss curve at training seed 0 (what pruning compares)
        affordable = affordable_top(limits.confirm_top, limits.target_children, share=limits.confirm_share)
        top = affordable if strategy.confirms else 0
        self.confirmation = Confirmation(top)

    # --- work in ------------------------------------------------------------------------------------
    def queue_leftovers(self, noise_done: int, unevaluated: list[Genome], billed: set[str] = frozenset()) -> None:
        """Noise evaluations still owed, then children a stopped run left unevaluated. A child not in `billed`
        (genomes with a recorded evaluation) carries the LLM usage kept with it onto its first row."""
        seed = self.board.seed()
        for i in range(noise_done, self.limits.noise_repeats):
            self.urgent.append(Task(seed.id, seed.source, "noise", seed=i, description="seed", operator="seed"))
        for genome in unevaluated:
            parent = genome.parents[0] if genome.parents else None
            stored = None if genome.id in billed else genome.meta.get("llm")
            llm = None if stored is None else LLMSpend.from_record(stored)
            self.urgent.append(
                Task(genome.id, genome.source, "child", 0, genome.description, genome.operator, llm, parent=parent)
            )

    def child_ready(self, child) -> None:
        """A proposal gave a committed child (evolve.proposals.Child): it waits for a slot."""
        self.proposal_failures = 0
        parent = child.parents[0] if child.parents else None
        task = Task(child.genome_id, child.source, "child", 0, child.description, child.operator, child.llm)
        task.parent, task.best_at_proposal = parent, child.best_at_pick
        self.ready.append(task)

    def take_stale(self) -> list[Task]:
        """The children to rebase now (the driver starts each, and hands back the outcome to `rebased`)."""
        taken, self.stale = self.stale, []
        self.rebasing.update((t.genome_id, t) for t in taken)
        return taken

    def rebased(self, original: Task, child) -> None:
        """A rebase finished: its child (evolve.proposals.Child) waits for a slot first; without one, the
        original does, as proposed."""
        self.rebasing.pop(original.genome_id, None)
        if child is not None:
            self.child_ready(child)
            self.ready.appendleft(self.ready.pop())
            return
        original.rebase_tried = True
        self.ready.appendleft(original)

    def proposal_failed(self, failure) -> None:
        """A proposal gave no child (evolve.proposals.Failure); too many in a row abort the run. An outage (the
        LLM API down, not the mutators stuck) never counts: offline stand-ins keep the slots busy meanwhile."""
        self.strategy.proposal_failed(failure.parents)
        if failure.status == "outage":
            return
        self.proposal_failures += 1
        if failure.status == "budget":
            self.stop_reason = self.stop_reason or "the LLM budget (--max-llm-cost) is spent"
        elif self.proposal_failures >= MAX_PROPOSAL_FAILURES:
            raise RunAborted(
                f"the mutators failed {self.proposal_failures} times in a row (last: {failure.operator} "
                f"{failure.status}: {failure.reason})"
            )

    def proposals_wanted(self, in_flight: int) -> int:
        """How many proposals to start now (the strategy may hold some back: one child at a time)."""
        if self.stop_reason or not self.confirmation.searching():
            return 0
        wanted = min(len(self.idle) + self.limits.lookahead, self.children_to_dispatch())
        return max(0, wanted - len(self.ready) - in_flight)

    def check_limits(self, now: float, llm_cost: float) -> str | None:
        """Sets the stop reason when a limit is reached; returns it when it was set by this call."""
        if self.stop_reason:
            return None
        if now - self.started >= self.limits.max_seconds:
            self.stop_reason = "--max-hours reached"
        elif llm_cost >= self.limits.max_llm_cost:
            self.stop_reason = "--max-llm-cost reached"
        elif now - self.started >= self.limits.max_seconds - self.confirmation.reserve_seconds(
            len(self.deaths), self.busy_seconds / max(1, self.evaluations)
        ):
            self.confirmation.due()  # keep the wall clock the confirmation step needs
        return self.stop_reason

    # --- slots --------------------------------------------------------------------------------------
    def slot_ready(self, slot: int) -> None:
        self.idle.append(slot)
        self.deaths[slot] = 0

    def slot_died(self, slot: int) -> bool:
        """A slot's worker died; True: restart it, False: it is retired. Raises when none is left."""
        self.deaths[slot] += 1
        if self.deaths[slot] < MAX_SLOT_DEATHS:
            return True
        if all(d >= MAX_SLOT_DEATHS for d in self.deaths):
            raise RunAborted("every trainer worker has died repeatedly")
        return False

    def dispatch(self, now: float) -> list[tuple[int, Task]]:
        """Give idle slots their next tasks: (slot, task) pairs for the driver to start."""
        started = []
        while self.idle and not self.stop_reason:
            task = self._next_task()
            if task is None:
                break
            slot = self.idle.popleft()
            task.prune = self._prune_rule(task)
            self.inflight[slot] = Running(task, now)
            if task.kind in self.dispatched:
                self.dispatched[task.kind] += 1
            started.append((slot, task))
        return started

    def _next_task(self) -> Task | None:
        self._queue_confirmation()
        if self.urgent:
            return self.urgent.popleft()
        if self.confirmation.searching() and (self.ready or self.children_to_dispatch() > 0):
            repeat = self._repeat()
            if repeat is not None:
                return repeat
            return self._fresh()
        return None

    def _fresh(self) -> Task | None:
        """The next fresh child; an LLM child whose parent was overtaken since it was proposed goes to
        `stale` instead (evolve.rebase)."""
        while self.ready:
            task = self.ready.popleft()
            if not self._overtaken(task):
                return task
            self.stale.append(task)
        return None

    def _overtaken(self, task: Task) -> bool:
        """An LLM child, not rebased yet, proposed when the best was another genome than the best now, which
        is not its parent either."""
        if task.llm is None or task.operator not in ("mutate", "crossover") or task.rebase_tried:
            return False
        best = self.board.best() if task.best_at_proposal is not None else None
        return best is not None and best.id not in (task.best_at_proposal, task.parent)

    def _repeat(self) -> Task | None:
        """A repeat evaluation of a would-be best (not one already running), when the noise gate asks."""
        if (
            not self.strategy.repeats
            or self.dispatched["repeat"] >= self.limits.repeat_share * self.dispatched["child"]
        ):
            return None
        busy = {r.task.genome_id for r in self.inflight.values() if r.task.kind == "repeat"}
        for genome_id in self.board.repeat_candidates(len(busy) + 1):
            if genome_id not in busy:
                genome = self.board.genome(genome_id)
                count = self.board.fitness(genome_id).count
                return Task(genome.id, genome.source, "repeat", count, genome.description, genome.operator)
        return None

    def _queue_confirmation(self) -> None:
        """The confirmation step (evolve.confirm), once search is over and no child is in flight."""
        kinds = [r.task.kind for r in self.inflight.values()] + [t.kind for t in self.urgent]
        search_done = self.children_done >= self.child_target()
        for genome_id, seed in self.confirmation.start(search_done, "child" in kinds, self.board):
            g = self.board.genome(genome_id)
            self.urgent.append(Task(genome_id, g.source, "confirm", seed, g.description, g.operator))

    # --- results ------------------------------------------------------------------------------------
    def release(self, slot: int, now: float) -> Task:
        """The slot's evaluation finished (recorded next by the driver); the slot takes work again."""
        running = self.inflight.pop(slot)
        self.idle.append(slot)
        self.busy_seconds += now - running.started
        self.evaluations += 1
        return running.task

    def recorded(self, task: Task, result: RunResult) -> bool:
        """Accounting once the driver has recorded `result`; True: the driver may ask for a repair."""
        if task.kind == "child" and result.status != "interrupted":
            self.children_done += 1
        self.curve_seen(task.genome_id, task.seed, result.status, result.loss_curve)
        if task.kind == "confirm":
            self.confirmation.recorded()
        score = result.val_bpb if result.ok else None
        if task.kind == "child" and task.seed == 0:
            self.strategy.scored(task.genome_id, task.parent or "", score)
        if task.kind == "noise" and task.seed == 0:
            self.strategy.scored(task.genome_id, None, score)
        if task.kind == "noise" and result.status not in ("ok", "interrupted"):  # Ctrl-C is no verdict on the seed
            self._check_seed(result)
        return task.kind == "child" and result.status == "crash" and self.children_to_dispatch() > 0

    def task_lost(self, slot: int, why: str) -> tuple[Task, RunResult | None]:
        """The slot's worker died under its task: re-queued (None), or after too many deaths a crash to record."""
        task = self.inflight.pop(slot).task
        task.attempts += 1
        if task.attempts > self.limits.max_worker_retries:
            return task, RunResult(status="crash", reason=f"its trainer worker died {task.attempts} times ({why})")
        self.urgent.appendleft(task)
        return task, None

    def interrupt(self, now: float, reason: str) -> list[tuple[Task, RunResult]]:
        """Ctrl-C or an abort: every evaluation in flight, as an interrupted result to record."""
        stopped = []
        while self.inflight:
            _, running = self.inflight.popitem()
            result = RunResult(status="interrupted", reason=reason, total_seconds=now - running.started)
            stopped.append((running.task, result))
        return stopped

    def _check_seed(self, result: RunResult) -> None:
        if self.board.fitness(self.seed_id).count:
            return
        noise_left = any(t.kind == "noise" for t in self.urgent) or any(
            r.task.kind == "noise" for r in self.inflight.values()
        )
        if not noise_left:
            raise RunAborted(f"the seed genome does not train on this profile: {result.status}: {result.reason}")

    # --- pruning ------------------------------------------------------------------------------------
    def curve_seen(self, genome_id: str, seed: int, status: str, curve: Curve) -> None:
        """A recorded evaluation's loss curve (the driver also replays the archive's on resume): a genome's
        first whole curve at training seed 0 is what its children are compared with."""
        if status == "ok" and seed == 0 and curve:
            self.curves.setdefault(genome_id, curve)

    def _prune_rule(self, task: Task) -> PruneRule | None:
        """A child at seed 0 whose first parent's curve at seed 0 is known may be pruned; nothing else is."""
        pruning = self.limits.pruning
        if pruning is None or task.kind != "child" or task.seed != 0 or task.parent not in self.curves:
            return None
        return dataclasses.replace(pruning, parent=self.curves[task.parent])

    # --- accounting ---------------------------------------------------------------------------------
    def children_to_dispatch(self) -> int:
        """Children still to start: the target minus those done, running or queued."""
        running = sum(r.task.kind == "child" for r in self.inflight.values())
        queued = sum(t.kind == "child" for t in self.urgent)
        waiting = len(self.ready) + len(self.stale) + len(self.rebasing)
        return self.child_target() - self.children_done - running - queued - waiting

    def child_target(self) -> int:
        """The children target less what confirmation costs (the budget charges it)."""
        return max(0, self.limits.target_children - self.confirmation.evaluations)

    def finished(self) -> bool:
        """Nothing in flight and nothing left to do (or a stop was asked for)."""
        return not self.inflight and (self.stop_reason is not None or not self._work_left())

    def _work_left(self) -> bool:
        searching = self.confirmation.searching() and self.children_done < self.child_target()
        return bool(self.urgent) or searching or self.confirmation.pending()

    def generation(self) -> int:
        """The generation in progress (1-based): finished children // population_size + 1."""
        return self.children_done // self.limits.population_size + 1

    def generation_text(self) -> str:
        total = math.ceil(self.limits.target_children / self.limits.population_size)
        return f"generation {min(self.generation(), total)}/{total}"

    def status(self, now: float, llm_cost: float, proposals: int) -> dict:
        return dict(
            children_done=self.children_done,
            target=self.limits.target_children,
            running=len(self.inflight),
            queued=len(self.ready) + len(self.urgent) + proposals,
            generation=self.generation_text(),
            llm_cost=llm_cost,
            elapsed=now - self.started,
            slots=len(self.deaths),
            busy=self.busy_seconds + sum(now - r.started for r in self.inflight.values()),
            evaluations=self.evaluations,
            session_children=self.children_done - self.children_at_start,
        )
