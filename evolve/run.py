"""`python -m evolve --population N --generations G ...`: the evolutionary run on Ray.

Checks every input before anything starts (one line, exit 2), creates or resumes the run directory,
starts a local Ray or joins a cluster, places one PopulationActor on this node (the only writer of
the run) and one TrainerWorker per slot, and hands them to the Orchestrator.

The run directory: `.git/` (one commit per genome), `archive/` (one Parquet row per evaluation),
`population.json`, `run.json` (profile, settings, environment: what replay needs), `sessions.jsonl`
(one line per trainer worker of each session: node, GPU, environment), `results.tsv`, `logs/` (each
evaluation's train.log, where the trainer worker shares the run's node).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import signal
from datetime import datetime
from pathlib import Path

from evolve.cli import UsageError, profile_arg, read_genome
from evolve.settings import (
    CACHE_ENV,
    DEFAULT_POPULATION,
    DEFAULT_PRUNE,
    DEFAULT_REPEAT_SHARE,
    PROGRAM,
    RUN_JSON,
    SEED_GENOME,
    Settings,
)
from fitness.interface import check_genome
from fitness.profile import Profile
from mutators import MutatorConfig, MutatorConfigError, Mutators
from population import PopulationConfig, RunDirError
from population.rundir import write_atomic

log = logging.getLogger(__name__)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Every check on the run's inputs; UsageError (one line, exit 2) for the first bad one."""
    if args.population is not None:
        _at_least(args.population, 2, "--population")
    _at_least(args.generations, 1, "--generations")
    _at_least(args.noise_repeats, 2, "--noise-repeats")
    for name in ("cpus_per_child", "workers", "lookahead", "local_gpus"):
        value = getattr(args, name)
        if value is not None:
            _at_least(value, 0 if name in ("lookahead", "local_gpus") else 1, "--" + name.replace("_", "-"))
    if args.max_hours is not None and not args.max_hours > 0:
        raise UsageError(f"--max-hours must be positive, got {args.max_hours!r}")
    if args.repeat_share is not None and not 0 <= args.repeat_share <= 10:
        raise UsageError(f"--repeat-share must be between 0 and 10, got {args.repeat_share!r}")
    if args.max_llm_cost is not None and not args.max_llm_cost >= 0:
        raise UsageError(f"--max-llm-cost must be >= 0, got {args.max_llm_cost!r}")
    if args.address is not None and args.local_gpus is not None:
        raise UsageError("--local-gpus declares GPUs to a local Ray; it cannot be used with --address")
    if args.address is not None and args.dashboard:
        raise UsageError("--dashboard starts one with the local Ray; a cluster's is `ray dashboard CONFIG`")
    mutators = _mutator_config(args)
    profile = profile_arg(args.profile)
    if args.budget is not None:
        profile = profile.with_budget(args.budget)
    seed_path = args.seed_genome or str(SEED_GENOME)
    seed_source = read_genome(seed_path)
    problem = check_genome(seed_source)
    if problem:
        raise UsageError(f"seed genome {seed_path!r} is not a valid genome: {problem}")
    program = PROGRAM.read_text() if args.program is None else _read_text(args.program, "--program")
    run_dir = args.run_dir or Path("runs") / f"{profile.name}-{datetime.now():%Y%m%d-%H%M%S}"
    population = PopulationConfig(population_size=args.population or DEFAULT_POPULATION, selection_seed=args.seed)
    if args.paired is not None:
        population = dataclasses.replace(population, paired=args.paired)
    settings = Settings(
        run_dir=run_dir.resolve(),
        profile=profile,
        population=population,
        generations=args.generations,
        mutators=mutators,
        seed_path=seed_path,
        seed_source=seed_source,
        program=program,
        noise_repeats=args.noise_repeats,
        address=args.address,
        local_gpus=args.local_gpus,
        dashboard=args.dashboard,
        cpus_per_child=args.cpus_per_child,
        workers=args.workers,
        lookahead=args.lookahead,
        max_hours=args.max_hours or math.inf,
        max_llm_cost=math.inf if args.max_llm_cost is None else args.max_llm_cost,
        repeat_share=DEFAULT_REPEAT_SHARE if args.repeat_share is None else args.repeat_share,
        seed=args.seed,
        strategy=args.strategy or "evolve",
        prune=DEFAULT_PRUNE if args.prune is None else args.prune,
    )
    return _reconcile(settings, args)


def _repeat_share_needs_unpaired(args: argparse.Namespace, paired: bool) -> None:
    if paired and args.repeat_share is not None:
        raise UsageError(
            f"--repeat-share {args.repeat_share:g} sets repeats, which a paired run does not make; "
            "add --no-paired to a new run, or leave it out"
        )


def _reconcile(settings: Settings, args: argparse.Namespace) -> Settings:
    """A resumed run keeps its profile, budget and population size: scores must stay comparable."""
    path = settings.run_dir / RUN_JSON
    if not path.exists():
        if settings.run_dir.exists() and not settings.run_dir.is_dir():
            raise UsageError(f"--run-dir {str(settings.run_dir)!r} is not a directory")
        _repeat_share_needs_unpaired(args, settings.population.paired)
        return settings
    try:
        recorded = json.loads(path.read_text())
        profile = Profile(**recorded["profile"])
        size = int(recorded["population"]["population_size"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{str(path)!r} is damaged ({type(e).__name__}: {e}); the run cannot be resumed") from None
    where = str(settings.run_dir)
    if args.profile is not None and args.profile != profile.name:
        raise UsageError(f"run directory {where!r} belongs to profile {profile.name!r}, not {args.profile!r}")
    if args.budget is not None and args.budget != profile.budget_seconds:
        raise UsageError(
            f"run directory {where!r} trains children for {profile.budget_seconds:g} s; --budget {args.budget:g} "
            "would make its scores incomparable"
        )
    if args.population is not None and args.population != size:
        raise UsageError(f"run directory {where!r} has --population {size}; resume it with the same value")
    strategy = recorded.get("strategy", "evolve")
    if args.strategy is not None and args.strategy != strategy:
        raise UsageError(f"run directory {where!r} runs --strategy {strategy}; resume it with the same value")
    prune = recorded.get("prune") is not None
    if args.prune is not None and args.prune != prune:
        raise UsageError(f"run directory {where!r} runs {'--prune' if prune else '--no-prune'}; resume it so")
    paired = bool(recorded["population"].get("paired", False))  # runs made before it was recorded: unpaired
    if args.paired is not None and args.paired != paired:
        raise UsageError(f"run directory {where!r} runs {'--paired' if paired else '--no-paired'}; resume it so")
    _repeat_share_needs_unpaired(args, paired)
    population = dataclasses.replace(settings.population, population_size=size, paired=paired)
    noise = int(recorded.get("noise_repeats", settings.noise_repeats))
    return dataclasses.replace(
        settings, profile=profile, population=population, noise_repeats=noise, strategy=strategy, prune=prune
    )


def main(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        Mutators(settings.mutators)  # refuses e.g. --mutators llm without an API key, before anything is written
    except MutatorConfigError as e:
        raise UsageError(f"--mutators: {e}") from None
    spent = open_run_dir(settings)
    left = max(0.0, settings.max_llm_cost - spent)  # the mutators send no request past the run's budget
    mutators = Mutators(dataclasses.replace(settings.mutators, max_cost_usd=left))
    signal.signal(signal.SIGTERM, _raise_interrupt)  # `ray job stop` and `timeout` stop it like Ctrl-C

    import ray

    from evolve.session import Session, start_ray

    print(f"evolve: run directory {settings.run_dir}", flush=True)
    print(f"evolve: starting {'Ray at ' + settings.address if settings.address else 'a private local Ray'}", flush=True)
    start_ray(settings, CACHE_ENV)
    try:
        return Session(settings, mutators).run()
    finally:
        ray.shutdown()


def open_run_dir(settings: Settings) -> float:
    """Create or check the run directory in this process first, so a bad one is one line, not a Ray error.

    Returns the LLM dollars the run has recorded so far."""
    from population import Population

    fresh = not (settings.run_dir / RUN_JSON).exists()
    try:
        with Population.open(settings.run_dir, settings.seed_source, settings.population) as population:
            spent = population.summary().llm_cost_usd
    except RunDirError as e:
        raise UsageError(str(e)) from None
    path = settings.run_dir / RUN_JSON
    if fresh:
        write_atomic(path, json.dumps(settings.record(), indent=1) + "\n")
    elif json.loads(path.read_text()).get("generations") != settings.generations:
        write_atomic(
            path, json.dumps({**json.loads(path.read_text()), "generations": settings.generations}, indent=1) + "\n"
        )
    return spent


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _mutator_config(args: argparse.Namespace) -> MutatorConfig:
    try:
        return MutatorConfig.from_cli(
            mode=args.mutators,
            model=args.model,
            price=args.price,
            max_tokens=args.max_tokens,
            max_concurrency=args.llm_concurrency,
            timeout_s=args.llm_timeout,
            max_cost_usd=None if args.max_llm_cost is None else str(args.max_llm_cost),
        )
    except MutatorConfigError as e:
        raise UsageError(_flag_names(str(e))) from None


_FLAGS = {  # MutatorConfig field -> the run's flag, for error lines
    "model": "--model",
    "price": "--price",
    "max_tokens": "--max-tokens",
    "max_concurrency": "--llm-concurrency",
    "timeout_s": "--llm-timeout",
    "max_cost_usd": "--max-llm-cost",
}


def _flag_names(message: str) -> str:
    """A MutatorConfigError's line with the run's flag names ('bad timeout_s ...' -> 'bad --llm-timeout ...')."""
    for name, flag in _FLAGS.items():
        if message.startswith(f"bad {name} "):
            return f"bad {flag} " + message.removeprefix(f"bad {name} ")
    return f"--mutators: {message}" if message.startswith("bad mode") else message


def _at_least(value: int, low: int, flag: str) -> None:
    if value < low:
        raise UsageError(f"{flag} must be at least {low}, got {value}")


def _read_text(path: str, flag: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{flag} {path!r} is not a file")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{flag} {path!r} is not UTF-8 text") from None
