"""The scheduling loop: every free trainer starts the next ready evaluation at once; results are consumed
as they finish (`ray.wait`), never in submission order.

Work, in priority order: evaluations of the seed that measure the noise level (at the start of a run);
children re-queued after their worker died, or left unevaluated by a stopped run; repeats that confirm
a would-be best; fresh children, proposed ahead by the Proposer. A generation is an accounting unit
(every `population_size` finished children), not a barrier.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field

import ray

from evolve.progress import Progress
from evolve.proposals import Child, Outcome, Proposer, add_llm
from fitness.result import RunResult

log = logging.getLogger(__name__)

WORKER_DIED = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError)
MAX_PROPOSAL_FAILURES = 50  # in a row: the mutators can find nothing new, so the run stops


class RunAborted(Exception):
    """The run cannot go on (the seed doesn't train, the mutators are stuck, no worker is left)."""


@dataclass
class Task:
    genome_id: str
    source: str
    kind: str  # "noise" | "child" | "repeat"
    seed: int
    description: str = ""
    operator: str = ""
    llm: dict | None = None
    attempts: int = 0  # worker deaths so far


@dataclass
class Running:
    task: Task
    worker: int
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Limits:
    target_children: int  # generations x population_size
    population_size: int
    noise_repeats: int
    lookahead: int  # proposals kept ready beyond the idle workers
    max_seconds: float  # this session's wall clock (--max-hours)
    max_llm_cost: float  # whole run (--max-llm-cost)
    max_worker_retries: int = 2  # re-queues of one task after its worker died
    repeat_share: float = 0.5  # repeats started per child started, at most (repeats confirm would-be bests)


class Orchestrator:
    def __init__(
        self, population, workers: list, proposer: Proposer, limits: Limits, progress: Progress, on_ready=None
    ) -> None:
        self.population = population
        self.workers = workers
        self.proposer = proposer
        self.limits = limits
        self.progress = progress
        self.on_ready = on_ready  # called with each worker's prepare() reply
        self.nodes: list[dict] = []
        # A worker takes children once it has prepared the data on its node (on an autoscaling cluster,
        # once its node exists); the others meanwhile train.
        self.starting: dict[ray.ObjectRef, int] = {w.prepare.remote(): i for i, w in enumerate(workers)}
        self.idle: deque[int] = deque()
        self.worker_failures = [0] * len(workers)
        self.inflight: dict[ray.ObjectRef, Running] = {}
        self.urgent: deque[Task] = deque()  # noise, retries, unevaluated children of a stopped run
        self.ready: deque[Task] = deque()  # fresh children
        summary = ray.get(population.summary.remote())
        self.children_done = summary["children"]
        self.children_at_start = self.children_done
        self.seed_id = summary["seed_id"]
        self.llm_cost_before = summary["llm_cost_usd"]  # recorded by earlier sessions
        self.stop_reason: str | None = None
        self.proposal_failures = 0
        self.started = time.monotonic()
        self.busy_seconds = 0.0  # slot time spent on finished evaluations this session
        self.evaluations = 0  # finished this session
        self.dispatched = {"child": 0, "repeat": 0}  # started this session, by kind

    # --- the loop ----------------------------------------------------------------------------------
    def run(self) -> str:
        """Evolve until the target, a limit, or Ctrl-C; returns why it stopped."""
        self._queue_leftovers()
        try:
            while True:
                self._take_proposals()
                self._check_limits()
                self._dispatch()
                self._propose()
                if not self.inflight and (self.stop_reason or not self._work_left()):
                    break
                waiting = [*self.inflight, *self.starting]
                if not waiting and not self.proposer.in_flight and not self.urgent and not self.ready:
                    raise RunAborted("nothing to run: no evaluation in flight and no proposal pending")
                wait = 0.05 if self.proposer.in_flight else 5.0
                done, _ = ray.wait(waiting, num_returns=1, timeout=wait) if waiting else ([], [])
                if not waiting:
                    time.sleep(wait)
                for ref in done:
                    if ref in self.starting:
                        self._started(ref)
                    else:
                        self._finish(ref)
        except KeyboardInterrupt:
            self.interrupt("the run was stopped (Ctrl-C) while this evaluation trained")
            return "interrupted (Ctrl-C)"
        except RunAborted:
            self.interrupt("the run was aborted while this evaluation trained")
            raise
        finally:
            self.proposer.close()
            self._park_unstarted()
        return self.stop_reason or f"{self.children_done} children done ({self._generation_text()})"

    def interrupt(self, reason: str) -> None:
        """Stop every trainer now and record what was in flight as interrupted (re-queued on resume)."""
        for worker in self.workers:
            ray.kill(worker, no_restart=True)
        while self.inflight:
            _, running = self.inflight.popitem()
            result = RunResult(status="interrupted", reason=reason, total_seconds=time.monotonic() - running.started)
            self._record(running.task, result, {})

    def _park_unstarted(self) -> None:
        """Children never started keep their LLM usage (and failed proposals' carry) in the archive: each is
        recorded as interrupted, which the next session re-queues."""
        carried = self.proposer.take_unbilled()
        result = RunResult(status="interrupted", reason="the session ended before this child started")
        seed = Task(self.seed_id, "", "noise", 0, "LLM usage of proposals that yielded no child", "seed")
        for task in [*self.ready] or ([seed] if carried else []):
            task.llm, carried = add_llm(task.llm, carried), None
            where = dict(started="", finished="", llm=task.llm)
            ray.get(self.population.record.remote(task.genome_id, result, kind=task.kind, generation=0, **where))
        self.ready.clear()

    # --- steps ------------------------------------------------------------------------------------
    def _queue_leftovers(self) -> None:
        """Noise evaluations still owed, then children a stopped run left unevaluated."""
        frame = ray.get(self.population.archive.remote())
        noise = frame[(frame.kind == "noise") & (frame.status != "interrupted")] if len(frame) else frame
        seed = ray.get(self.population.seed.remote())
        for i in range(len(noise), self.limits.noise_repeats):
            self.urgent.append(Task(seed.id, seed.source, "noise", seed=i, description="seed", operator="seed"))
        leftovers = ray.get(self.population.unevaluated.remote())
        billed = set(frame.genome_id) if len(frame) else set()  # a child's LLM usage goes on its first row
        for genome in leftovers:
            llm = None if genome.id in billed else genome.meta.get("llm")
            task = Task(genome.id, genome.source, "child", 0, genome.description, genome.operator, llm)
            self.urgent.append(task)
        if leftovers:
            self.progress.note(f"re-queued {len(leftovers)} children left unevaluated by the last session")
        for row in frame.itertuples():  # what the prompts should know about evaluations so far
            self._remember_row(row)

    def _take_proposals(self) -> None:
        for item in self.proposer.finished():
            if isinstance(item, Child):
                self.proposal_failures = 0
                self.ready.append(
                    Task(item.genome_id, item.source, "child", 0, item.description, item.operator, item.llm)
                )
                continue
            self.progress.proposal_failed(item)
            if item.status == "outage":  # the LLM API is down, not the mutators stuck: stand-ins keep slots busy
                continue
            self.proposal_failures += 1
            if item.status == "budget":
                self.stop_reason = self.stop_reason or "the LLM budget (--max-llm-cost) is spent"
            elif self.proposal_failures >= MAX_PROPOSAL_FAILURES:
                raise RunAborted(
                    f"the mutators failed {self.proposal_failures} times in a row (last: {item.operator} "
                    f"{item.status}: {item.reason})"
                )

    def _check_limits(self) -> None:
        if self.stop_reason:
            return
        if time.monotonic() - self.started >= self.limits.max_seconds:
            self.stop_reason = "--max-hours reached"
        elif self._llm_cost() >= self.limits.max_llm_cost:
            self.stop_reason = "--max-llm-cost reached"
        if self.stop_reason:
            self.progress.note(f"stopping: {self.stop_reason}; waiting for {len(self.inflight)} evaluations in flight")

    def _dispatch(self) -> None:
        while self.idle and not self.stop_reason:
            task = self._next_task()
            if task is None:
                return
            index = self.idle.popleft()
            ref = self.workers[index].train.remote(task.source, task.seed)
            self.inflight[ref] = Running(task, index)
            if task.kind in self.dispatched:
                self.dispatched[task.kind] += 1

    def _next_task(self) -> Task | None:
        if self.urgent:
            return self.urgent.popleft()
        if self.ready or self._children_to_dispatch() > 0:
            repeat = self._repeat()
            if repeat is not None:
                return repeat
            if self.ready:
                return self.ready.popleft()
        return None

    def _repeat(self) -> Task | None:
        """A repeat evaluation of a would-be best (not one already running), when the noise gate asks."""
        if self.dispatched["repeat"] >= self.limits.repeat_share * self.dispatched["child"]:
            return None
        busy = {r.task.genome_id for r in self.inflight.values() if r.task.kind == "repeat"}
        for genome_id in ray.get(self.population.repeat_candidates.remote(len(busy) + 1)):
            if genome_id not in busy:
                genome = ray.get(self.population.genome.remote(genome_id))
                count = ray.get(self.population.fitness.remote(genome_id)).count
                return Task(genome.id, genome.source, "repeat", count, genome.description, genome.operator)
        return None

    def _propose(self) -> None:
        if self.stop_reason:
            return
        wanted = min(len(self.idle) + self.limits.lookahead, self._children_to_dispatch())
        while len(self.ready) + self.proposer.in_flight < wanted:
            self.proposer.start(self._generation())

    def _started(self, ref: ray.ObjectRef) -> None:
        index = self.starting.pop(ref)
        try:
            info = ray.get(ref)
        except WORKER_DIED as e:
            self.progress.note(f"trainer worker {index} died while starting ({_one_line(e)[:120]})")
            self._restart(index)
            return
        except ray.exceptions.RayTaskError as e:
            raise RunAborted(f"trainer worker {index} could not prepare the data: {_one_line(e)}") from None
        self.nodes.append(info)
        self.idle.append(index)
        self.worker_failures[index] = 0
        if self.on_ready is not None:
            self.on_ready(info)

    def _finish(self, ref: ray.ObjectRef) -> None:
        running = self.inflight.pop(ref)
        task = running.task
        try:
            reply = ray.get(ref)
        except WORKER_DIED as e:
            self._worker_died(running, e)
            return
        except ray.exceptions.RayTaskError as e:  # our code raised in the worker: the child's result is a crash
            reply = dict(result=RunResult(status="crash", reason=f"trainer error: {_one_line(e)}").to_dict())
        self.idle.append(running.worker)
        self.busy_seconds += time.monotonic() - running.started
        self.evaluations += 1
        result = RunResult.from_dict(reply["result"])
        self._record(task, result, reply)
        if task.kind == "noise" and not result.ok:
            self._check_seed()
        if task.kind == "child" and result.status == "crash" and result.log_tail:
            genome = ray.get(self.population.genome.remote(task.genome_id))
            if self._children_to_dispatch() > 0:
                self.proposer.start_repair(genome, result.log_tail, self._generation())

    def _worker_died(self, running: Running, error: Exception) -> None:
        task, index = running.task, running.worker
        task.attempts += 1
        why = _one_line(error)
        if task.attempts > self.limits.max_worker_retries:
            reason = f"its trainer worker died {task.attempts} times ({why})"
            self._record(task, RunResult(status="crash", reason=reason), {})
        else:
            self.progress.note(f"trainer worker {index} died ({why[:120]}); re-queued {task.genome_id[:7]}")
            self.urgent.appendleft(task)
        self._restart(index)

    def _restart(self, index: int) -> None:
        """Ray restarts a dead worker (elsewhere if its node is gone); it takes work once prepared again.
        A worker that dies three times without finishing a start-up in between is retired."""
        self.worker_failures[index] += 1
        if self.worker_failures[index] < 3:
            self.starting[self.workers[index].prepare.remote()] = index
            return
        self.progress.note(f"trainer worker {index} died 3 times in a row; retiring it")
        ray.kill(self.workers[index], no_restart=True)
        if all(f >= 3 for f in self.worker_failures):
            raise RunAborted("every trainer worker has died repeatedly")

    def _record(self, task: Task, result: RunResult, where: dict) -> None:
        generation = 0 if task.kind == "noise" else self._generation()
        ray.get(
            self.population.record.remote(
                task.genome_id,
                result,
                kind=task.kind,
                generation=generation,
                node=where.get("node", ""),
                worker=where.get("worker", ""),
                started=where.get("started", ""),
                finished=where.get("finished", ""),
                llm=task.llm,
            )
        )
        if task.kind == "child" and result.status != "interrupted":
            self.children_done += 1
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
        if task.kind == "child":
            genome = ray.get(self.population.genome.remote(task.genome_id))
            if genome.parents:
                fitness = ray.get(self.population.fitness.remote(genome.parents[0]))
                parent_score = fitness.mean if fitness.count else None
        self.proposer.remember(outcome, parent_score)
        self.progress.result(task, result, parent_score, self._status())

    def _check_seed(self) -> None:
        if ray.get(self.population.fitness.remote(self.seed_id)).count:
            return
        noise_left = any(t.kind == "noise" for t in self.urgent) or any(
            r.task.kind == "noise" for r in self.inflight.values()
        )
        if not noise_left:
            frame = ray.get(self.population.archive.remote())
            last = frame[frame.genome_id == self.seed_id].iloc[-1]
            raise RunAborted(f"the seed genome does not train on this profile: {last.status}: {last.reason}")

    # --- accounting --------------------------------------------------------------------------------
    def _children_to_dispatch(self) -> int:
        """Children still to start: the target minus those done, running or queued."""
        running = sum(r.task.kind == "child" for r in self.inflight.values())
        queued = sum(t.kind == "child" for t in self.urgent)
        return self.limits.target_children - self.children_done - running - queued - len(self.ready)

    def _work_left(self) -> bool:
        return bool(self.urgent) or self.children_done < self.limits.target_children

    def _generation(self) -> int:
        """The generation in progress (1-based): finished children // population_size + 1."""
        return self.children_done // self.limits.population_size + 1

    def _generation_text(self) -> str:
        total = math.ceil(self.limits.target_children / self.limits.population_size)
        return f"generation {min(self._generation(), total)}/{total}"

    def _status(self) -> dict:
        now = time.monotonic()
        return dict(
            children_done=self.children_done,
            target=self.limits.target_children,
            running=len(self.inflight),
            queued=len(self.ready) + len(self.urgent) + self.proposer.in_flight,
            generation=self._generation_text(),
            llm_cost=self._llm_cost(),
            elapsed=now - self.started,
            slots=len(self.workers),
            busy=self.busy_seconds + sum(now - r.started for r in self.inflight.values()),
            evaluations=self.evaluations,
            session_children=self.children_done - self.children_at_start,
        )

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


def _one_line(error: BaseException) -> str:
    """The error in one line; for an error raised inside a Ray task, the original exception."""
    cause = getattr(error, "cause", None)
    if isinstance(error, ray.exceptions.RayTaskError) and cause is not None:
        error = cause
        return " ".join(f"{type(error).__name__}: {error}".split())[:300]
    return " ".join(str(error).split())[:300]
