"""One session of a run on Ray: place the actors, run the Orchestrator, print the outcome.

Layout: one PopulationActor pinned to this node (the run directory lives here; it is the only writer),
one TrainerWorker per slot (a GPU, or `--cpus-per-child` cores where there are no GPUs), restarted
by Ray if it dies, and the mutator threads of the Proposer in this process.

The API key stays in this process's memory: `Mutators` reads ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL)
when it is built, and `start_ray` removes every ANTHROPIC_* variable from the environment before Ray
starts, since Ray's processes (GCS, raylet, workers, and through them the trainers) inherit it.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from datetime import datetime, timezone

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from evolve.cli import StartupError, UsageError
from evolve.messages import WorkerReady
from evolve.orchestrator import Orchestrator
from evolve.policy import Limits, RunAborted
from evolve.pool import WorkerPool
from evolve.progress import Progress, best_text, duration
from evolve.proposals import Proposer
from evolve.settings import PRUNING, Settings, record_worker
from evolve.strategies import make_strategy
from evolve.workers import TrainerWorker
from mutators import Mutators
from population.actor import PopulationActor
from trainer import TrainerConfig
from trainer.cgroup import available_cores

EXIT_ABORTED, EXIT_INTERRUPTED = 1, 130
log = logging.getLogger(__name__)
ASSUMED_OVERHEAD_S = (
    10.0  # per evaluation beyond training, until the run measured its own (cpu: 8.7 s, docs/benchmarks)
)


API_ENV_PREFIX = "ANTHROPIC_"
RAY_START_TRIES = 3
NODE_TIMED_OUT = "timed out during startup"  # the words of Ray's error for a node that missed its window


def forget_api_environment() -> None:
    """Remove ANTHROPIC_* from this process's environment (and so from every process it starts)."""
    for name in [name for name in os.environ if name.startswith(API_ENV_PREFIX)]:
        del os.environ[name]


def start_ray(settings: Settings, cache_env: tuple[str, ...]) -> None:
    """Join the cluster at --address, or start a private local Ray (never one someone else started).

    Build the Mutators first: the API key is gone from the environment once this returns."""
    forget_api_environment()
    env = {k: os.environ[k] for k in cache_env if k in os.environ and not k.startswith(API_ENV_PREFIX)}
    common = dict(runtime_env={"env_vars": env} if env else None, logging_level=logging.WARNING)
    if settings.address:
        init_ray(address=settings.address, **common)
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # our own private Ray: no token, no warning about one
        context = init_ray(
            address="local",
            num_cpus=available_cores(),  # affinity and cgroup quota: children never oversubscribe cores
            num_gpus=settings.local_gpus,
            include_dashboard=settings.dashboard,
            **common,
        )
        if settings.dashboard:
            where = f"at http://{context.dashboard_url}" if context.dashboard_url else "did not start (see Ray's logs)"
            print(f"evolve: Ray dashboard {where}", flush=True)


def init_ray(tries: int = RAY_START_TRIES, **kwargs) -> ray._private.worker.BaseContext:
    """ray.init, started again when its node misses Ray's start-up window: Ray gives a new raylet a fixed 30 s
    to register (not configurable in Ray 2.60), which a heavily loaded machine can miss; StartupError, one
    line, after `tries`."""
    for attempt in range(1, tries + 1):
        try:
            return ray.init(**kwargs)
        except Exception as e:  # Ray raises a bare Exception for this one case: narrowed by its message below
            if NODE_TIMED_OUT not in str(e):
                raise
            ray.shutdown()  # whatever of the node did start
            log.warning("Ray's node missed its start-up window (attempt %d of %d)", attempt, tries)
    raise StartupError(
        f"Ray did not start: its node missed Ray's 30 s start-up window {tries} times (machine too busy?)"
    )


def plan_slots(settings: Settings) -> tuple[str, dict, int, int]:
    """(unit, actor resources, number of workers, threads per child) from what the cluster has.

    One GPU per child where the cluster has GPUs or the profile trains on CUDA (an autoscaling cluster
    may have none yet: --workers says how many to ask for); otherwise --cpus-per-child cores, by default
    one: a single-threaded child's CPU-seconds buy the same steps however busy the machine is, while two
    threads' CPU-seconds bought from 214 to 342 smoke steps (docs/trust.md), so a slot per core.
    """
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    if gpus or settings.device == "cuda":
        count = settings.workers or gpus
        if not count:
            raise UsageError("the cluster has no GPUs yet; pass --workers N to let it scale up to N GPUs")
        per_child = settings.cpus_per_child or 1
        return "GPU", {"num_gpus": 1, "num_cpus": per_child}, count, per_child
    per_child = settings.cpus_per_child or 1
    if per_child > cpus and not settings.address:
        raise UsageError(f"--cpus-per-child {per_child} is more than the {cpus} CPUs this machine has")
    return "slot", {"num_cpus": per_child}, settings.workers or max(1, cpus // per_child), per_child


class Session:
    """`worker_class`: the trainer actor's class (benchmarks pass one that holds its slot without training)."""

    def __init__(self, settings: Settings, mutators: Mutators, worker_class: type = TrainerWorker) -> None:
        self.settings = settings
        self.mutators = mutators
        self.worker_class = worker_class

    def run(self) -> int:
        s = self.settings
        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
        population = PopulationActor.options(scheduling_strategy=here).remote(
            str(s.run_dir), s.seed_source, s.population
        )
        summary = ray.get(population.summary.remote())
        unit, resources, count, threads = plan_slots(s)
        Worker = ray.remote(self.worker_class).options(**resources, max_restarts=-1, max_task_retries=0)
        workers = [Worker.remote(s.profile.to_dict(), s.device, threads, (str(s.run_dir),)) for _ in range(count)]
        progress = Progress(population, unit, profile=s.profile)
        target = s.generations * s.population.population_size
        self._announce(progress, population, count, summary)
        progress.note(
            f"{'resuming' if summary.evaluations else 'starting'} run: profile {s.profile.name} "
            f"({s.profile.budget_seconds:g} s per child), {plural(count, 'trainer worker')}, one per {unit} "
            f"({plural(threads, 'thread')} each), population {s.population.population_size}, "
            f"{plural(s.generations, 'generation')} = {target} children ({summary.children} done), "
            f"mutators: {mutators_text(self.mutators)}, strategy {s.strategy}"
        )
        seed = ray.get(population.seed.remote())
        proposer = Proposer(
            population,
            self.mutators,
            program=s.program,
            profile=s.profile.name,
            seed_genome=seed,
            rng_seed=s.seed,
            start_index=summary.genomes,
            budget_seconds=s.profile.budget_seconds,
            machine=machine_text(s.device, unit, threads, count, None),
            log_dir=s.run_dir / "llm",
        )
        limits = Limits(
            target_children=target,
            population_size=s.population.population_size,
            noise_repeats=s.noise_repeats,
            lookahead=self._lookahead(count),
            max_seconds=s.max_hours * 3600 if math.isfinite(s.max_hours) else math.inf,
            max_llm_cost=s.max_llm_cost,
            repeat_share=s.repeat_share,
            pruning=PRUNING if s.prune else None,
        )
        session = datetime.now(timezone.utc).isoformat(timespec="seconds")

        def on_ready(info: WorkerReady) -> None:
            record_worker(s.run_dir, session, info.record(), sys.argv)
            if unit == "GPU":  # what a child may hold is the GPU's memory, which only a worker can see
                gib = info.environment.get("gpu_memory_gib")
                proposer.machine = machine_text(s.device, unit, threads, count, gib)
            progress.note(f"trainer worker ready on {info.node} (data and tokenizer: {info.prepare_seconds:.0f} s)")

        pool = WorkerPool(workers, on_ready=on_ready)
        strategy = make_strategy(s.strategy, seed.id, count)
        orchestrator = Orchestrator(population, pool, proposer, limits, strategy, progress)
        code = 0
        try:
            why = orchestrator.run()
            code = EXIT_INTERRUPTED if why.startswith("interrupted") else 0
        except RunAborted as e:
            why, code = f"aborted: {e}", EXIT_ABORTED
        progress.note(f"stopped: {why}")
        if strategy.name != "evolve":  # evolve's pick is its best (confirmed at the end), from _finish
            pick = strategy.pick(orchestrator.board)
            progress.note(f"{strategy.name}'s pick (its best at training seed 0): {pick[:7] if pick else 'none'}")
        self._finish(population, progress)
        if code == EXIT_ABORTED:
            print(f"evolve: error: {why}", file=sys.stderr)
        return code

    def _announce(self, progress: Progress, population, slots: int, summary: dict) -> None:
        """What happens before the first result, and about how long the whole run will take."""
        s = self.settings
        frame = ray.get(population.archive.remote())
        measured = frame[frame.status == "ok"]
        overhead = float((measured.total_seconds - measured.training_seconds).mean()) if len(measured) else None
        children = s.generations * s.population.population_size - summary.children
        noise = max(0, s.noise_repeats - int((frame.kind == "noise").sum())) if len(frame) else s.noise_repeats
        eta = planned_seconds(children + noise, s.profile.budget_seconds, overhead, slots)
        progress.note(
            "each trainer worker first prepares the dataset and tokenizer (once per machine: the first time it "
            f"trains the tokenizer), then the seed trains {plural(noise, 'time')} to measure the noise level"
        )
        assumed = "assumed" if overhead is None else "measured"
        progress.note(
            f"planned: {children + noise} evaluations x ({s.profile.budget_seconds:g} s training + "
            f"{ASSUMED_OVERHEAD_S if overhead is None else overhead:.0f} s {assumed} overhead) / "
            f"{plural(slots, 'slot')} = about {duration(eta)}"
        )
        if s.device == "cpu" and eta > 2 * 3600:
            first = planned_seconds(4 * 3 + 3, 30, overhead, slots)
            progress.note(
                "that is a long run for a CPU; a first look (the README's first run, planned about "
                f"{duration(first)}): python -m evolve --profile cpu --budget 30 --population 4 --generations 3"
            )

    def _lookahead(self, workers: int) -> int:
        """Proposals made ahead of the idle slots: half the workers for the LLM (no slot waits for a reply);
        none for offline operators, which take milliseconds, so a child's parents are picked when its slot
        frees, from the population as it is then."""
        if self.settings.lookahead is not None:
            return self.settings.lookahead
        return max(1, workers // 2) if self.mutators.llm_available else 0

    def _finish(self, population, progress: Progress) -> None:
        run_dir = self.settings.run_dir
        ray.get(population.export_results_tsv.remote(str(run_dir / "results.tsv")))
        summary = ray.get(population.summary.remote())
        best = ray.get(population.best.remote())
        by_status = ", ".join(f"{status} {n}" for status, n in summary.by_status.items())
        lines = [f"run directory: {run_dir}", f"evaluations: {summary.evaluations} ({by_status})"]
        if best is not None:
            frame = ray.get(population.archive.remote())
            mine = frame[(frame.genome_id == best.id) & (frame.status == "ok")]
            depth = len(ray.get(population.lineage.remote(best.id)).path)
            confirmed = mine[mine.kind == "confirm"]  # test_bpb only for a confirmed best
            test = f"{confirmed.test_bpb.mean():.4f}" if len(confirmed) else "n/a (not confirmed)"
            lines += [
                f"best genome: {best_text(summary).removeprefix('best ')}, {len(mine)} ok evaluations, "
                f"lineage depth {depth}: {best.description}",
                f"held-out test_bpb of the best: {test}",
                f"view its lineage: python -m evolve lineage {best.short_id} --run-dir {run_dir}",
                f"replay it:        python -m evolve replay {best.short_id} --run-dir {run_dir}",
            ]
        lines.append(
            f"resume it: python -m evolve --run-dir {run_dir} --generations {self.settings.generations} "
            "(a total: a larger number evolves further)"
        )
        for line in lines:
            progress.note(line)
        ray.get(population.close.remote())


def machine_text(device: str, unit: str, threads: int, count: int, gpu_memory_gib: float | None) -> str:
    """What the LLM is told a child runs on, with the memory it may use (on a CPU, the trainer's cap)."""
    if unit == "GPU":
        memory = f", {gpu_memory_gib:g} GiB of GPU memory each" if gpu_memory_gib else ""
        return f"{device} (one GPU per child, {count} at once{memory})"
    cap = TrainerConfig().memory_mb / 1024
    return f"{device} ({threads} cores per child, {count} at once, {cap:g} GiB of memory each)"


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def mutators_text(mutators: Mutators) -> str:
    """'offline (hyperparam, merge)' or 'LLM claude-sonnet-5-5 and offline': what will write the children."""
    if not mutators.llm_available:
        return "offline (hyperparam, merge)" + ("" if mutators.config.mode == "offline" else "; no ANTHROPIC_API_KEY")
    families = mutators.config.family_weights()
    return f"LLM {mutators.config.model}" + (" and offline" if "offline" in families else "")


def planned_seconds(evaluations: int, budget: float, overhead: float | None, slots: int) -> float:
    """Evaluations x (budget + overhead per evaluation) / slots: the run's expected wall time."""
    return evaluations * (budget + (ASSUMED_OVERHEAD_S if overhead is None else overhead)) / max(1, slots)
