"""One session of a run on Ray: place the actors, run the Orchestrator, print the outcome.

Layout: one PopulationActor pinned to this node (the run directory lives here; it is the only writer),
one TrainerWorker per slot (a GPU, or `--cpus-per-child` cores where there are no GPUs), restarted
by Ray if it dies, and the mutator threads of the Proposer in this process.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from datetime import datetime, timezone

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from evolve.cli import UsageError
from evolve.orchestrator import Limits, Orchestrator, RunAborted
from evolve.progress import Progress, best_text
from evolve.proposals import Proposer
from evolve.run import Settings, record_worker
from evolve.workers import TrainerWorker
from mutators import Mutators
from population.actor import PopulationActor

EXIT_ABORTED, EXIT_INTERRUPTED = 1, 130


def start_ray(settings: Settings, cache_env: tuple[str, ...]) -> None:
    """Join the cluster at --address, or start a private local Ray (never one someone else started)."""
    env = {k: os.environ[k] for k in cache_env if k in os.environ}
    common = dict(runtime_env={"env_vars": env} if env else None, logging_level=logging.WARNING)
    if settings.address:
        ray.init(address=settings.address, **common)
    else:
        ray.init(
            address="local",
            num_cpus=os.cpu_count(),
            num_gpus=settings.local_gpus,
            include_dashboard=False,
            **common,
        )


def plan_slots(settings: Settings) -> tuple[str, dict, int, int]:
    """(unit, actor resources, number of workers, threads per child) from what the cluster has.

    One GPU per child where the cluster has GPUs or the profile trains on CUDA (an autoscaling cluster
    may have none yet: --workers says how many to ask for); otherwise --cpus-per-child cores.
    """
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    if gpus or settings.device == "cuda":
        count = settings.workers or gpus
        if not count:
            raise UsageError("the cluster has no GPUs yet; pass --workers N to let it scale up to N GPUs")
        per_child = settings.cpus_per_child or 1
        return "GPU", {"num_gpus": 1, "num_cpus": per_child}, count, per_child
    per_child = settings.cpus_per_child or cpus
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
        progress.note(
            f"{'resuming' if summary['evaluations'] else 'starting'} run: profile {s.profile.name} "
            f"({s.profile.budget_seconds:g} s per child), {count} trainer workers ({unit}s, {threads} threads "
            f"each), population {s.population.population_size}, {s.generations} generations = {target} children "
            f"({summary['children']} done), mutators {self.mutators!r}"
        )
        seed = ray.get(population.seed.remote())
        proposer = Proposer(
            population,
            self.mutators,
            program=s.program,
            profile=s.profile.name,
            seed_genome=seed,
            rng_seed=s.seed,
            start_index=summary["genomes"],
        )
        limits = Limits(
            target_children=target,
            population_size=s.population.population_size,
            noise_repeats=s.noise_repeats,
            lookahead=max(1, count // 2) if s.lookahead is None else s.lookahead,
            max_seconds=s.max_hours * 3600 if math.isfinite(s.max_hours) else math.inf,
            max_llm_cost=s.max_llm_cost,
            repeat_share=s.repeat_share,
        )
        session = datetime.now(timezone.utc).isoformat(timespec="seconds")

        def on_ready(info: dict) -> None:
            record_worker(s.run_dir, session, info, sys.argv)

        orchestrator = Orchestrator(population, workers, proposer, limits, progress, on_ready=on_ready)
        code = 0
        try:
            why = orchestrator.run()
            code = EXIT_INTERRUPTED if why.startswith("interrupted") else 0
        except RunAborted as e:
            why, code = f"aborted: {e}", EXIT_ABORTED
        progress.note(f"stopped: {why}")
        self._finish(population, progress)
        if code == EXIT_ABORTED:
            print(f"evolve: error: {why}", file=sys.stderr)
        return code

    def _finish(self, population, progress: Progress) -> None:
        run_dir = self.settings.run_dir
        ray.get(population.export_results_tsv.remote(str(run_dir / "results.tsv")))
        summary = ray.get(population.summary.remote())
        best = ray.get(population.best.remote())
        lines = [f"run directory: {run_dir}", f"evaluations: {summary['evaluations']} {summary['by_status']}"]
        if best is not None:
            frame = ray.get(population.archive.remote())
            mine = frame[(frame.genome_id == best.id) & (frame.status == "ok")]
            depth = len(ray.get(population.lineage.remote(best.id)).path)
            test = f"{mine.test_bpb.mean():.4f}" if len(mine) else "n/a"
            lines += [
                f"best genome: {best_text(summary)}, {len(mine)} ok evaluations, "
                f"lineage depth {depth}: {best.description}",
                f"held-out test_bpb of the best: {test}",
                f"view its lineage: python -m evolve lineage {best.short_id} --run-dir {run_dir}",
                f"replay it:        python -m evolve replay {best.short_id} --run-dir {run_dir}",
            ]
        lines.append(
            f"continue the run: python -m evolve --population {self.settings.population.population_size} "
            f"--generations <more> --run-dir {run_dir}"
        )
        for line in lines:
            progress.note(line)
        ray.get(population.close.remote())
