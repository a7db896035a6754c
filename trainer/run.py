"""Run one genome: materialize it in a fresh sandbox, train it in a subprocess, score it, return a RunResult.

Pure from the caller's view: genome source and settings in, RunResult out; nothing else is kept
unless `log_dir` is given. Runs on a remote Ray worker too, so everything here must be picklable.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import signal
import time
from pathlib import Path

from fitness import data
from fitness.curves import PruneRule
from fitness.interface import check_genome
from fitness.profile import Profile
from fitness.result import RunResult
from trainer import spawn, supervise
from trainer.scorer_client import ScorerProcess
from trainer.spawn import Child, Standby, TrainerConfig

EXIT_STATUS = {3: "nan"}  # fitness.harness exit codes
DEFAULT_CONFIG = TrainerConfig()


def run(
    genome_source: str,
    profile: Profile,
    *,
    seed: int = 0,
    config: TrainerConfig = DEFAULT_CONFIG,
    scorer: ScorerProcess | None = None,
    standby: Standby | None = None,
    log_path: Path | None = None,
    hide: tuple[Path, ...] = (),
    prune: PruneRule | None = None,
    test: bool = True,
) -> RunResult:
    """Train and score one genome. `hide`: extra paths the child must not see (the run directory).
    `scorer` and `standby`, kept by a caller that trains many genomes, make the next child start sooner.
    `prune`: stop the child, unscored (status pruned), once its loss curve trails its parent's by the rule."""
    started = time.perf_counter()
    base = dict(seed=seed, profile=profile.name, budget_seconds=profile.budget_seconds, device=_device_name(config))
    problem = check_genome(genome_source)
    if problem:
        status = "crash" if problem.startswith("syntax error") else "invalid"
        return RunResult(status=status, reason=problem, total_seconds=time.perf_counter() - started, **base)
    cache = data.prepare(profile.dataset, profile.vocab_size, (profile.seq_len,), profile.num_shards)
    own_scorer = scorer is None
    scorer = scorer or scorer_process(config.threads)
    phases = {"prepare": time.perf_counter() - started}
    phases["scorer_start"] = _warm(scorer, profile, config)
    hide = tuple(hide)
    spawned = (standby.take(profile, config, hide) if standby else None) or spawn.start(profile, cache, config, hide)
    try:
        child = spawn.go(spawned, genome_source, seed, profile, config, prune)
        if standby is not None:  # the next child gets ready while this one is scored
            t = time.perf_counter()
            standby.fill(profile, config, hide, cache)
            phases["standby"] = time.perf_counter() - t
        result = _judge(child, profile, spawned.box, scorer, config, phases, test)
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(spawned.box / "train.log", log_path)
    finally:
        if own_scorer:
            scorer.close()
        if not config.keep_sandbox:
            shutil.rmtree(spawned.box, ignore_errors=True)
    total = time.perf_counter() - started
    rest = total - result.training_seconds - sum(result.phases.values())  # sandbox set-up, log copy, clean-up
    phases = {**result.phases, "other": max(0.0, rest)}
    return dataclasses.replace(result, total_seconds=total, phases=phases, **base)


def _warm(scorer: ScorerProcess, profile: Profile, config: TrainerConfig) -> float:
    """Get the scorer ready for this profile; seconds spent waiting. A GPU child's training overlaps the
    scorer's start-up; a CPU child's would lose cores to it, so there a cold scorer is made ready first."""
    started = time.perf_counter()
    scorer.warm(profile.to_dict(), config.threads)
    if config.device == "cpu":
        scorer.ready(timeout=max(60.0, profile.startup_allowance_s))
    return time.perf_counter() - started


def _judge(
    child: Child, profile: Profile, box: Path, scorer: ScorerProcess, config: TrainerConfig, phases: dict, test: bool
) -> RunResult:
    """Every figure recorded here, and every status decided, comes from the trainer's own measures of the
    child (supervise.Exit) and from the scorer; the child's record (what the genome's process says of
    itself) gives only its steps and tokens, labelled as its own report, and its reasons for failing."""
    ran, record = child.exit, child.record
    training = ran.genome_seconds or 0.0
    phases = {**phases, **_child_phases(ran)}
    stats = dict(
        training_seconds=training,
        num_steps=_count(record.get("steps")),
        tokens=_count(record.get("tokens")),
        peak_memory_mb=(ran.peak_memory_bytes if config.device == "cpu" else ran.peak_gpu_memory_bytes) / 2**20,
        log_tail=child.log_tail,
        phases=phases,
        loss_curve=ran.curve,
    )
    status, reason = _child_status(child, profile, box / "model.pt2")
    if status != "ok":
        return RunResult(status=status, reason=reason, **stats)
    t = time.perf_counter()
    reply = scorer.score(
        box / "model.pt2",
        profile.to_dict(),
        config.device,
        config.threads,
        timeout=max(60.0, profile.startup_allowance_s),
        test=test,
    )
    phases.update(_score_phases(reply, time.perf_counter() - t))
    if reply["status"] != "ok":
        return RunResult(status=reply["status"], reason=reply["reason"], **stats)
    stats["num_params"] = int(reply["num_params"])
    return RunResult(status="ok", val_bpb=reply["val_bpb"], test_bpb=reply["test_bpb"], **stats)


def _child_phases(ran: supervise.Exit) -> dict[str, float]:
    """Where the child's wall time went besides train.py's time on its clock, by the trainer's measure:
    from the go to train.py's start (process start and imports for a child started on demand; a standby did
    those before its go, and none of that is charged here), and the rest: its exit, and on the CPU clock
    the wall time its threads were not all busy (or waited for a core)."""
    wall = ran.ended - ran.started
    start = (ran.genome_started if ran.genome_started is not None else ran.ended) - ran.started
    return {"child_start": start, "child_other": max(0.0, wall - start - (ran.genome_seconds or 0.0))}


def _count(value: object) -> int:
    return int(value) if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0 else 0


def _score_phases(reply: dict, seconds: float) -> dict[str, float]:
    """The scorer's own split (load, probe, eval) and the rest: its start-up when cold, the pipe."""
    parts = {f"score_{k}": float(v) for k, v in reply.get("phases", {}).items()}
    return {**parts, "score_other": max(0.0, seconds - sum(parts.values()))}


def _child_status(child: Child, profile: Profile, model: Path) -> tuple[str, str]:
    ran, record = child.exit, child.record
    clock = "wall clock" if ran.threads is None else f"its clock (CPU-seconds over {ran.threads} threads)"
    if ran.killed == "pruned":
        return "pruned", ran.pruned
    if ran.killed == "deadline":
        return "timeout", f"killed at the hard limit of {profile.hard_limit_s:.0f} s on {clock}"
    if ran.killed:
        return "crash", f"killed by the trainer: {ran.killed}"
    if ran.code in EXIT_STATUS:
        return EXIT_STATUS[ran.code], _text(record.get("reason")) or "training loss went non-finite"
    if ran.code != 0 or record.get("status", "crash") != "ok":
        reason = _text(record.get("reason")) or _last_error(child.log_tail) or _exit_reason(ran.code)
        return record.get("status") if record.get("status") in ("invalid", "nan") else "crash", reason
    if child.overrun:
        return "over_budget", child.overrun
    allowed = profile.budget_seconds + profile.untimed_allowance_s + profile.startup_allowance_s
    if ran.seconds > allowed:
        return "over_budget", f"child ran {ran.seconds:.1f} s on {clock}, allowed {allowed:.0f} s"
    if model.stat().st_size == 0:
        return "invalid", "train.py finished without calling harness.submit(model)"
    return "ok", ""


def _text(value: object) -> str:
    return value.splitlines()[0][:300] if isinstance(value, str) and value.strip() else ""


def _exit_reason(code: int) -> str:
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"


def _last_error(log_tail: str) -> str:
    lines = [line.strip() for line in log_tail.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _device_name(config: TrainerConfig) -> str:
    if config.device == "cpu":
        return f"cpu:{config.threads}"
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else config.device


def scorer_process(threads: int) -> ScorerProcess:
    """A scorer to keep warm across many `run` calls (one per trainer worker)."""
    return ScorerProcess(env=_scorer_env(threads))


def _scorer_env(threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC")}
    env.update(OMP_NUM_THREADS=str(threads), PYTHONPATH=spawn.code_root())
    return env
