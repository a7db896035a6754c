"""The Ray driver loop: results are consumed as they finish (`ray.wait`), never in submission order.

Each turn takes finished proposals, checks the limits, gives free slots their next tasks, starts
proposals, and waits for the next result or worker start-up. Every decision is the policy's
(evolve.policy); the workers' life is the pool's (evolve.pool); the run's state is the PopulationActor's.
"""

from __future__ import annotations

import logging
import math
import random
import signal
import threading
import time

import ray

from evolve import rebase
from evolve.messages import Where
from evolve.policy import Limits, Policy, RunAborted, Task
from evolve.pool import RESTARTING, StartFailed, WorkerPool
from evolve.progress import Progress
from evolve.proposals import Child, Outcome, Proposer, add_llm
from evolve.strategies import Strategy
from fitness.result import RunResult
from population.archive import curve
from population.messages import Fitness, Genome

log = logging.getLogger(__name__)
NOWHERE = Where()  # an evaluation that never reached a worker
WAIT_S = 1.0  # the longest a turn waits for a result: also how long a Ctrl-C may wait for its answer

__all__ = ["Limits", "Orchestrator", "RunAborted"]


class ActorBoard:
    """The policy's view of the run's state, through the PopulationActor (evolve.strategies.Board)."""

    def __init__(self, population) -> None:
        self.population = population
        self._seed = ray.get(population.seed.remote())

    def seed(self) -> Genome:
        return self._seed

    def genome(self, genome_id: str) -> Genome:
        return ray.get(self.population.genome.remote(genome_id))

    def fitness(self, genome_id: str) -> Fitness:
        return ray.get(self.population.fitness.remote(genome_id))

    def best(self) -> Genome | None:
        return ray.get(self.population.best.remote())

    def select_parents(self, k_parents: int, rng: random.Random) -> list[Genome]:
        return ray.get(self.population.select_parents.remote(k_parents, rng))

    def repeat_candidates(self, n: int) -> list[str]:
        return ray.get(self.population.repeat_candidates.remote(n))

    def unrelated(self, genome_id: str) -> list[Genome]:
        return ray.get(self.population.unrelated.remote(genome_id))

    def confirm_candidates(self, n: int, seeds: int) -> list[str]:
        return ray.get(self.population.confirm_candidates.remote(n, seeds))


class Orchestrator:
    def __init__(
        self, population, pool: WorkerPool, proposer: Proposer, limits: Limits, strategy: Strategy, progress: Progress
    ) -> None:
        self.population = population
        self.pool = pool
        self.proposer = proposer
        self.progress = progress
        self.board = ActorBoard(population)
        summary = ray.get(population.summary.remote())
        self.llm_cost_before = summary.llm_cost_usd  # recorded by earlier sessions
        self.policy = Policy(
            limits, strategy, self.board, len(pool.workers), children_done=summary.children, now=time.monotonic()
        )

    def run(self) -> str:
        """Evolve until the target, a limit, or Ctrl-C; returns why it stopped."""
        self.pool.start_all()
        self._queue_leftovers()
        interrupted = False
        try:
            with StopSignals() as stop:
                while not self._turn():
                    stop.check()
        except KeyboardInterrupt:
            interrupted = True  # the user asked to stop now: proposals under way are not waited for
            self.interrupt("the run was stopped (Ctrl-C) while this evaluation trained")
            return "interrupted (Ctrl-C)"
        except (RunAborted, StartFailed) as e:
            self.interrupt("the run was aborted while this evaluation trained")
            raise RunAborted(str(e)) from None
        finally:
            self.proposer.close(wait=not interrupted)  # a run that ends of itself bills every request it sent
            self._park_unstarted()
        p = self.policy
        return p.stop_reason or f"{p.children_done} children done ({p.generation_text()})"

    def _turn(self) -> bool:
        """One pass of the loop; True when the run is over."""
        p = self.policy
        self._take_proposals()
        stop = p.check_limits(time.monotonic(), self._llm_cost())
        if stop:
            self.progress.note(f"stopping: {stop}; waiting for {len(p.inflight)} evaluations in flight")
        for slot, task in p.dispatch(time.monotonic()):
            self.pool.train(slot, task.source, task.seed, task.prune, test=task.kind == "confirm")
            self.progress.started(task, p.status(time.monotonic(), self._llm_cost(), self.proposer.in_flight))
        for task in p.take_stale():
            rebase.start(self.proposer, task, self.board.best(), p.generation())
        self._propose()
        if p.finished():
            return True
        waiting = self.pool.waiting()
        if not waiting and not self.proposer.in_flight and not p.urgent and not p.ready:
            raise RunAborted("nothing to run: no evaluation in flight and no proposal pending")
        wait = 0.05 if self.proposer.in_flight else WAIT_S
        done, _ = ray.wait(waiting, num_returns=1, timeout=wait) if waiting else ([], [])
        if not waiting:
            time.sleep(wait)
        for ref in done:
            self._started(ref) if ref in self.pool.starting else self._finish(ref)
        return False

    def interrupt(self, reason: str) -> None:
        """Stop every trainer now and record what was in flight as interrupted (re-queued on resume)."""
        self.pool.kill_all()
        for task, result in self.policy.interrupt(time.monotonic(), reason):
            self._record(task, result)

    def _park_unstarted(self) -> None:
        """Children never started keep their LLM usage (and failed proposals' carry) in the archive: each that
        cost LLM tokens is recorded as interrupted, which the next session re-queues (one that cost nothing is
        re-queued anyway, as a committed genome without an evaluation)."""
        carried = self.proposer.take_unbilled()
        result = RunResult(status="interrupted", reason="the session ended before this child started")
        seed = Task(self.policy.seed_id, "", "noise", 0, "LLM usage of proposals that yielded no child", "seed")
        unstarted = [*self.policy.ready, *self.policy.stale, *self.policy.rebasing.values()]
        billed = [task for task in unstarted if task.llm]
        if carried:
            target = (billed or [*unstarted, seed])[0]
            target.llm = add_llm(target.llm, carried)
            billed = billed or [target]
        for task in billed:
            where = dict(started="", finished="", llm=task.llm)
            ray.get(self.population.record.remote(task.genome_id, result, kind=task.kind, generation=0, **where))
        self.policy.ready.clear()
        self.policy.stale.clear()
        self.policy.rebasing.clear()

    def _queue_leftovers(self) -> None:
        frame = ray.get(self.population.archive.remote())
        noise = frame[(frame.kind == "noise") & (frame.status != "interrupted")] if len(frame) else frame
        leftovers = ray.get(self.population.unevaluated.remote())
        billed = set(frame.genome_id) if len(frame) else set()  # a child's LLM usage goes on its first row
        self.policy.queue_leftovers(len(noise), leftovers, billed)
        if leftovers:
            self.progress.note(f"re-queued {len(leftovers)} children left unevaluated by the last session")
        for row in frame.itertuples():  # what the prompts should know about evaluations so far
            self._remember_row(row)
            self.policy.curve_seen(row.genome_id, row.seed, row.status, curve(row))  # what children prune against

    def _take_proposals(self) -> None:
        for item in self.proposer.finished():
            if isinstance(item, Child):
                self.policy.child_ready(item)
            elif isinstance(item, rebase.Rebased):
                self._rebased(item)
            else:
                self.progress.proposal_failed(item)
                self.policy.proposal_failed(item)

    def _rebased(self, outcome: rebase.Rebased) -> None:
        old = outcome.original.genome_id[:7]
        if outcome.child is None:
            self.progress.note(
                f"child {old}'s parent was overtaken; no rebase ({outcome.reason}): it trains as proposed"
            )
        else:
            self.progress.note(
                f"child {old}'s parent was overtaken: rebased onto the best as {outcome.child.genome_id[:7]}"
            )
        self.policy.rebased(outcome.original, outcome.child)

    def _propose(self) -> None:
        p = self.policy
        for _ in range(p.proposals_wanted(self.proposer.in_flight)):
            if not p.strategy.can_propose():
                return
            self.proposer.start(
                p.generation(),
                lambda rng: p.strategy.parents(self.board, rng),
                lambda rng: p.strategy.transplant_parents(self.board, rng),
                self._best_id() if self.proposer.mutators.llm_available else None,  # what rebases compare
            )

    def _best_id(self) -> str | None:
        best = self.board.best()
        return best.id if best is not None else None

    def _started(self, ref: ray.ObjectRef) -> None:
        index, why = self.pool.started(ref)
        if why is None:
            self.policy.slot_ready(index)
            return
        if why == RESTARTING:  # the call reached the worker while Ray restarts it: ask again shortly
            time.sleep(0.5)
            self.pool.start(index)
            return
        self.progress.note(f"trainer worker {index} died while starting ({why[:120]})")
        self._restart(index)

    def _finish(self, ref: ray.ObjectRef) -> None:
        index, reply, why = self.pool.trained(ref)
        if reply is None:
            task, result = self.policy.task_lost(index, why)
            if result is None:
                self.progress.note(f"trainer worker {index} died ({why[:120]}); re-queued {task.genome_id[:7]}")
            else:
                self._record(task, result)
            self._restart(index)
            return
        task = self.policy.release(index, time.monotonic())
        result = reply.result  # a crash where our code raised in the worker
        if self._record(task, result, reply.where) and result.log_tail:
            genome = self.board.genome(task.genome_id)
            self.proposer.start_repair(genome, result.log_tail, self.policy.generation())

    def _restart(self, index: int) -> None:
        if self.policy.slot_died(index):
            self.pool.start(index)
            return
        self.progress.note(f"trainer worker {index} died 3 times in a row; retiring it")
        self.pool.retire(index)

    def _record(self, task: Task, result: RunResult, where: Where = NOWHERE) -> bool:
        """Record one evaluation; True when the policy would take a repair of it."""
        generation = 0 if task.kind == "noise" else self.policy.generation()
        ray.get(
            self.population.record.remote(
                task.genome_id,
                result,
                kind=task.kind,
                generation=generation,
                node=where.node,
                worker=where.worker,
                started=where.started,
                finished=where.finished,
                llm=task.llm,
            )
        )
        repair = self.policy.recorded(task, result)
        outcome = Outcome(
            task.genome_id,
            task.description,
            result.status,
            result.reason,
            result.val_bpb if result.ok else None,
            result.num_steps,
            result.num_params,
            result.log_tail,
        )
        parent_score = None
        if task.kind == "child" and task.parent:
            fitness = self.board.fitness(task.parent)
            parent_score = fitness.mean if fitness.count else None
        self.proposer.remember(outcome, parent_score)
        now = time.monotonic()
        self.progress.result(
            task, result, parent_score, self.policy.status(now, self._llm_cost(), self.proposer.in_flight)
        )
        return repair

    def _llm_cost(self) -> float:
        """The run's LLM spend: earlier sessions' (from the archive) plus every request of this one."""
        return self.llm_cost_before + self.proposer.mutators.spent_usd

    def _remember_row(self, row) -> None:
        ok = row.status == "ok" and row.val_bpb is not None and math.isfinite(row.val_bpb)
        outcome = Outcome(
            row.genome_id,
            row.description,
            row.status,
            row.reason,
            row.val_bpb if ok else None,
            int(row.num_steps),
            int(row.num_params),
            "",
        )
        self.proposer.outcomes[row.genome_id] = outcome


class StopSignals:
    """Ctrl-C (SIGINT) and SIGTERM while the loop runs: the first is a request the loop answers at the end of
    its turn (within WAIT_S), the second interrupts at once.

    The handler only sets a flag. Python's default turns Ctrl-C into a KeyboardInterrupt raised in whatever
    the main thread runs at that moment, and there it can be lost: an exception raised in a finalizer (such
    as one of Ray's handles, collected after a trainer worker died) or in a callback a native library runs
    is printed and dropped: the likeliest cause (not caught in the act) of runs that went on to their end
    after a Ctrl-C. A flag cannot be dropped."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt  # the second: at once
        self.received = signal.Signals(signum).name

    def check(self) -> None:
        """Raises KeyboardInterrupt once a stop signal has come."""
        if self.received is not None:
            raise KeyboardInterrupt
