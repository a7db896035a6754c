"""Run one genome: materialize it in a fresh sandbox, train it in a subprocess, score it, return a RunResult.

Pure from the caller's view: genome source and settings in, RunResult out; nothing else is kept
unless `log_dir` is given. Runs on a remote Ray worker too, so everything here must be picklable.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fitness import data, datasets
from fitness.interface import check_genome
from fitness.profile import Profile
from fitness.result import RunResult
from trainer import sandbox, supervise
from trainer.scorer_client import ScorerProcess

logger = logging.getLogger(__name__)
EXIT_STATUS = {3: "nan"}  # fitness.harness exit codes
LOG_TAIL_LINES = 40
RECORD_MAX_BYTES = 1 << 20  # a child.json larger than this is ignored (the child wrote it, not the harness)
BOX_PREFIX = "evolve-child-"  # then the trainer's pid: tempdir/evolve-child-<pid>-<random>


@dataclass(frozen=True)
class TrainerConfig:
    threads: int = 2  # CPU threads for the child (and the scorer)
    device: str = "cpu"  # "cpu" or "cuda" (the GPU Ray assigned through CUDA_VISIBLE_DEVICES)
    isolate: bool = True  # bubblewrap when available; False runs children with only env scrub + rlimits
    keep_sandbox: bool = False  # leave the child's directory behind, for debugging
    disk_mb: int = 4096  # the child's writable space (a tmpfs under bubblewrap) and its largest file
    memory_mb: int = 16384  # resident memory of the child's processes (and a CPU child's address space)


def run(
    genome_source: str,
    profile: Profile,
    *,
    seed: int = 0,
    config: TrainerConfig = TrainerConfig(),
    scorer: ScorerProcess | None = None,
    standby: Standby | None = None,
    log_path: Path | None = None,
    hide: tuple[Path, ...] = (),
) -> RunResult:
    """Train and score one genome. `hide`: extra paths the child must not see (the run directory).
    `scorer` and `standby`, kept by a caller that trains many genomes, make the next child start sooner."""
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
    spawned = (standby.take(profile, config, hide) if standby else None) or _spawn(profile, cache, config, hide)
    try:
        child = _go(spawned, genome_source, seed, profile, config)
        if standby is not None:  # the next child gets ready while this one is scored
            t = time.perf_counter()
            standby.fill(profile, config, hide)
            phases["standby"] = time.perf_counter() - t
        result = _judge(child, profile, spawned.box, scorer, config, phases)
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


class Standby:
    """The next child, started ahead: in its sandbox, torch imported (on a GPU, the device opened), waiting
    for a genome. A caller that trains one genome after another keeps one (a trainer worker does) and `run`
    refills it as soon as a child has exited, so the next child's start-up overlaps this one's scoring
    instead of adding to the next child's time. A standby holds no genome and has read nothing it should
    not: train.py and spec.json come with its go. One that no longer fits (another profile, settings or
    hidden paths) or has died is discarded, and the child is started on demand."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._spawned: _Spawned | None = None

    def fill(self, profile: Profile, config: TrainerConfig, hide: tuple[Path, ...] = ()) -> None:
        """Start a standby child for these settings (a caller may do so before its first genome)."""
        self.close()
        cache = data.prepare(profile.dataset, profile.vocab_size, (profile.seq_len,), profile.num_shards)
        try:
            self._spawned = _spawn(profile, cache, config, tuple(hide))
        except Exception as e:  # noqa: BLE001 -- never worth a result: the next child starts on demand
            logger.warning("could not start a standby child: %s: %s", type(e).__name__, e)
            return
        self._key = (profile, config, tuple(hide))

    @property
    def box(self) -> Path | None:
        """The waiting child's sandbox directory on this machine (None when none waits)."""
        return self._spawned.box if self._spawned is not None else None

    def take(self, profile: Profile, config: TrainerConfig, hide: tuple[Path, ...]) -> _Spawned | None:
        spawned, fits = self._spawned, self._key == (profile, config, tuple(hide))
        self._spawned = self._key = None
        if spawned is not None and fits and spawned.process.alive():
            return spawned
        if spawned is not None:
            _discard(spawned)
        return None

    def close(self) -> None:
        if self._spawned is not None:
            _discard(self._spawned)
        self._spawned = self._key = None


def _warm(scorer: ScorerProcess, profile: Profile, config: TrainerConfig) -> float:
    """Get the scorer ready for this profile; seconds spent waiting. A GPU child's training overlaps the
    scorer's start-up; a CPU child's would lose cores to it, so there a cold scorer is made ready first."""
    started = time.perf_counter()
    scorer.warm(profile.to_dict(), config.threads)
    if config.device == "cpu":
        scorer.ready(timeout=max(60.0, profile.startup_allowance_s))
    return time.perf_counter() - started


@dataclass(frozen=True)
class _Child:
    exit_code: int | None  # None: killed (see `killed`)
    started: float  # parent's clock when the process was spawned and when it was reaped
    ended: float
    overrun: str  # how train.py exceeded its time by the trainer's own measure (supervise.Exit.overrun)
    killed: str  # "deadline", what the trainer's watchdog saw, or "" when it exited by itself
    record: dict  # child.json, or {} when the child never wrote it
    log_tail: str

    @property
    def wall_seconds(self) -> float:
        return self.ended - self.started


@dataclass(frozen=True)
class _Spawned:
    """A child process in its sandbox directory `box`, getting ready or ready, not yet let go."""

    box: Path
    spec: dict  # spec.json but the seed, which comes with the genome
    process: supervise.Spawned


def _spawn(profile: Profile, cache: data.TokenCache, config: TrainerConfig, hide: tuple[Path, ...]) -> _Spawned:
    sweep_boxes()
    box = Path(tempfile.mkdtemp(prefix=f"{BOX_PREFIX}{os.getpid()}-"))
    try:
        isolated = config.isolate and sandbox.bwrap_path() is not None
        inside = sandbox.box_inside(box) if isolated else box  # where the child sees its directory
        inputs, results, spec = _make_box(profile, cache, box, inside, config, isolated)
        gpu = config.device == "cuda"
        limits = sandbox.Limits.for_child(config.disk_mb, config.memory_mb, gpu, profile.hard_limit_s)
        command = [sys.executable, "-m", "fitness.child", str(inside / "spec.json"), config.device]
        if isolated:
            ro_binds = {box / "train.py": inside / "train.py", box / "spec.json": inside / "spec.json", **inputs}
            rw_binds = {path: inside / path.name for path in results}
            hidden = [data.cache_root(), Path.home(), *filter(None, [datasets.plays_dir()]), *hide]
            command = sandbox.wrap(
                command,
                inside,
                hide=hidden,
                ro_binds=ro_binds,
                rw_binds=rw_binds,
                gpu=gpu,
                disk_bytes=limits.disk_bytes,
            )
        env = sandbox.child_env(dict(os.environ), config.threads, inside, _code_root())
        return _Spawned(box, spec, supervise.spawn(command, cwd=box, env=env, limits=limits))
    except BaseException:
        shutil.rmtree(box, ignore_errors=True)
        raise


@functools.cache
def sweep_boxes() -> list[Path]:
    """Once per process: remove the sandbox directories that trainers no longer alive left behind (a
    killed worker's in-flight and standby children, which no `finally` cleared). Returns those removed."""
    swept = []
    for box in Path(tempfile.gettempdir()).glob(f"{BOX_PREFIX}*-*"):
        pid = box.name[len(BOX_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(box, ignore_errors=True)
            swept.append(box)
    return swept


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _discard(spawned: _Spawned) -> None:
    supervise.discard(spawned.process)
    shutil.rmtree(spawned.box, ignore_errors=True)


def _go(spawned: _Spawned, source: str, seed: int, profile: Profile, config: TrainerConfig) -> _Child:
    """Hand the genome to a spawned child (the files it waits to read, then its go) and see it to its end.
    The files are written in place: under bubblewrap the child sees them through binds made at its spawn."""
    box = spawned.box
    try:
        (box / "train.py").write_text(source)
        (box / "spec.json").write_text(json.dumps({**spawned.spec, "seed": seed}))
    except BaseException:
        supervise.discard(spawned.process)  # never let go, so never reaped by `finish`
        raise
    ran = supervise.finish(spawned.process, log_path=box / "train.log", deadline_s=profile.hard_limit_s)
    record, tail = _read_record(box / "child.json"), _tail(box / "train.log")
    allowed = profile.budget_seconds + profile.untimed_allowance_s + profile.genome_allowance_s
    overrun = ran.overrun(allowed, None if config.device == "cuda" else config.threads)
    return _Child(ran.code, ran.started, ran.ended, overrun, ran.killed, record, tail)


def _make_box(
    profile: Profile,
    cache: data.TokenCache,
    box: Path,
    inside: Path,
    config: TrainerConfig,
    isolated: bool,
) -> tuple[dict[Path, Path], list[Path], dict]:
    """Empty train.py and spec.json (filled at the go) and result files; returns the data files to bind in
    (host -> inside), the result files (the only host files an isolated child can write) and the spec."""
    uid = sandbox.child_uid() if isolated else None
    for path in (box / "train.py", box / "spec.json"):
        path.touch()
    results = [box / "child.json", box / "model.pt2"]
    for path in results:
        path.touch()
        if uid is not None:
            os.chown(path, uid, uid)
    inputs = {
        cache.tokens_path("train"): inside / "data" / "train.bin",
        cache.rows_path("train", profile.seq_len): inside / "data" / "train_rows.npy",
    }
    tokens, rows = inputs.values() if isolated else inputs  # inside paths, or the cache's own
    spec = dict(profile=profile.to_dict(), device=config.device, threads=config.threads)
    spec.update(sandbox=str(inside), train_tokens=str(tokens), train_rows=str(rows))
    spec["confine"] = dict(uid=uid, max_processes=sandbox.MAX_PROCESSES if isolated else None)
    return inputs, results, spec


def _judge(
    child: _Child, profile: Profile, box: Path, scorer: ScorerProcess, config: TrainerConfig, phases: dict
) -> RunResult:
    record = child.record
    training = float(record.get("training_seconds") or 0.0)
    phases = {**phases, **_child_phases(child, training)}
    stats = dict(
        training_seconds=training,
        num_steps=int(record.get("steps", 0)),
        tokens=int(record.get("tokens", 0)),
        num_params=int(record.get("num_params", 0)),
        peak_memory_mb=float(record.get("peak_memory_mb", 0.0)),
        log_tail=child.log_tail,
        phases=phases,
    )
    status, reason = _child_status(child, profile, training)
    if status != "ok":
        return RunResult(status=status, reason=reason, **stats)
    t = time.perf_counter()
    reply = scorer.score(
        box / "model.pt2",
        profile.to_dict(),
        config.device,
        config.threads,
        timeout=max(60.0, profile.startup_allowance_s),
    )
    phases.update(_score_phases(reply, time.perf_counter() - t))
    if reply["status"] != "ok":
        return RunResult(status=reply["status"], reason=reply["reason"], **stats)
    stats["num_params"] = int(reply["num_params"])
    return RunResult(status="ok", val_bpb=reply["val_bpb"], test_bpb=reply["test_bpb"], **stats)


def _child_phases(child: _Child, training: float) -> dict[str, float]:
    """Where the child's wall time went besides training. The child reports its own phases and clock marks;
    it could lie about them, but only about how its own time splits: each is clamped into its wall time."""
    wall = child.wall_seconds
    reported = child.record.get("phases")
    marks = child.record.get("marks")
    marks = marks if isinstance(marks, dict) else {}
    # A standby child started and got ready before this run's clock (its go): none of that is charged here.
    process_started = _number(marks.get("process_started"))
    phases = {"process_start": _seconds(process_started - child.started, wall)}
    phases["import"] = _seconds(_number(marks.get("ready")) - max(process_started, child.started), wall)
    if isinstance(reported, dict):
        phases.update({str(k): _seconds(_number(v), wall) for k, v in reported.items()})
    phases["teardown"] = _seconds(child.ended - _number(marks.get("written"), child.ended), wall)
    phases["genome_other"] = max(0.0, wall - training - sum(phases.values()))
    return phases


def _number(value: object, default: float = math.nan) -> float:
    return float(value) if isinstance(value, (int, float)) else default


def _seconds(value: float, limit: float) -> float:
    return min(max(value, 0.0), limit) if math.isfinite(value) else 0.0


def _score_phases(reply: dict, seconds: float) -> dict[str, float]:
    """The scorer's own split (load, probe, eval) and the rest: its start-up when cold, the pipe."""
    parts = {f"score_{k}": float(v) for k, v in reply.get("phases", {}).items()}
    return {**parts, "score_other": max(0.0, seconds - sum(parts.values()))}


def _child_status(child: _Child, profile: Profile, training: float) -> tuple[str, str]:
    record = child.record
    if child.killed == "deadline":
        return "timeout", f"killed at the hard limit of {profile.hard_limit_s:.0f} s wall clock"
    if child.killed:
        return "crash", f"killed by the trainer: {child.killed}"
    if child.exit_code in EXIT_STATUS:
        return EXIT_STATUS[child.exit_code], record.get("reason") or "training loss went non-finite"
    if child.exit_code != 0 or record.get("status", "crash") != "ok":
        reason = record.get("reason") or _last_error(child.log_tail) or _exit_reason(child.exit_code)
        return record.get("status") if record.get("status") in ("invalid", "nan") else "crash", reason
    if training > profile.budget_seconds * 1.05 + 1.0:
        return "over_budget", f"trained {training:.1f} s on a {profile.budget_seconds:.0f} s budget"
    if child.overrun:
        return "over_budget", child.overrun
    allowed = profile.budget_seconds + profile.untimed_allowance_s + profile.startup_allowance_s
    if child.wall_seconds > allowed:
        return "over_budget", f"child ran {child.wall_seconds:.1f} s wall clock, allowed {allowed:.0f} s"
    if not (child.exit_code == 0 and record.get("training_seconds") is not None):
        return "invalid", "train.py finished without calling harness.submit(model)"
    return "ok", ""


def _exit_reason(code: int) -> str:
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"


def _read_record(path: Path) -> dict:
    """child.json as the child left it; the child can write anything there, so size and shape are checked."""
    try:
        if path.stat().st_size > RECORD_MAX_BYTES:
            return {}
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    with open(path, "rb") as handle:
        handle.seek(max(0, os.path.getsize(path) - 64 * 1024))
        return b"\n".join(handle.read().splitlines()[-lines:]).decode("utf-8", "replace")


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
    env.update(OMP_NUM_THREADS=str(threads), PYTHONPATH=_code_root())
    return env


def _code_root() -> str:
    return str(Path(__file__).resolve().parents[1])
