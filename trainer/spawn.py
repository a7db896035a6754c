"""A training child's process: its sandbox directory, started on demand or ahead as a standby, let go
with a genome and seen to its end (trainer.supervise watches it). `trainer.run` judges what it left.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fitness import data, datasets
from fitness.curves import PruneRule
from fitness.profile import Profile
from trainer import cgroup, sandbox, supervise

logger = logging.getLogger(__name__)
LOG_TAIL_LINES = 40
RECORD_MAX_BYTES = 1 << 20  # a child.json larger than this is ignored (the child wrote it, not the harness)
BOX_PREFIX = "evolve-child-"  # then the trainer's pid: tempdir/evolve-child-<pid>-<random>


@dataclass(frozen=True)
class TrainerConfig:
    threads: int = dataclasses.field(default_factory=cgroup.available_cores)  # the child's (and scorer's)
    device: str = "cpu"  # "cpu" or "cuda" (the GPU Ray assigned through CUDA_VISIBLE_DEVICES)
    isolate: bool = True  # bubblewrap when available; False runs children with only env scrub + rlimits
    keep_sandbox: bool = False  # leave the child's directory behind, for debugging
    disk_mb: int = 4096  # the child's writable space (a tmpfs under bubblewrap) and its largest file
    memory_mb: int = 16384  # resident memory of the child's processes (and a CPU child's address space)


class Standby:
    """The next child, started ahead: in its sandbox, torch imported (on a GPU, the device opened), waiting
    for a genome. A caller that trains one genome after another keeps one (a trainer worker does) and `run`
    refills it as soon as a child has exited, so the next child's start-up overlaps this one's scoring
    instead of adding to the next child's time. A standby holds no genome and has read nothing it should
    not: train.py and spec.json come with its go. One that no longer fits (another profile, settings or
    hidden paths) or has died is discarded, and the child is started on demand."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._spawned: Boxed | None = None

    def fill(
        self,
        profile: Profile,
        config: TrainerConfig,
        hide: tuple[Path, ...] = (),
        cache: data.TokenCache | None = None,
    ) -> None:
        """Start a standby child for these settings (a caller may do so before its first genome). `cache`:
        the profile's token cache, where the caller has it prepared already (`run` does)."""
        self.close()
        cache = cache or data.prepare(profile.dataset, profile.vocab_size, (profile.seq_len,), profile.num_shards)
        try:
            self._spawned = start(profile, cache, config, tuple(hide))
        except OSError as e:  # no directory, no process: the next child is started on demand, and fails there
            logger.warning("could not start a standby child: %s: %s", type(e).__name__, e)
            return
        self._key = (profile, config, tuple(hide))

    @property
    def box(self) -> Path | None:
        """The waiting child's sandbox directory on this machine (None when none waits)."""
        return self._spawned.box if self._spawned is not None else None

    def take(self, profile: Profile, config: TrainerConfig, hide: tuple[Path, ...]) -> Boxed | None:
        spawned, fits = self._spawned, self._key == (profile, config, tuple(hide))
        self._spawned = self._key = None
        if spawned is not None and fits and spawned.process.alive():
            return spawned
        if spawned is not None:
            discard(spawned)
        return None

    def close(self) -> None:
        if self._spawned is not None:
            discard(self._spawned)
        self._spawned = self._key = None


@dataclass(frozen=True)
class Child:
    """What the trainer measured of one child (`exit`), and what the child left: `record` (child.json,
    written by the genome's own process: what it says of itself, which decides nothing) and its log."""

    exit: supervise.Exit
    overrun: str  # how train.py exceeded its time by the trainer's own measure (supervise.Exit.overrun)
    record: dict  # child.json, or {} when the child never wrote it
    log_tail: str

    @property
    def wall_seconds(self) -> float:
        return self.exit.ended - self.exit.started


@dataclass(frozen=True)
class Boxed:
    """A child process in its sandbox directory `box`, getting ready or ready, not yet let go."""

    box: Path
    spec: dict  # spec.json but the seed, which comes with the genome
    process: supervise.Spawned


def start(profile: Profile, cache: data.TokenCache, config: TrainerConfig, hide: tuple[Path, ...]) -> Boxed:
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
            plays = datasets.plays_dir()
            hidden = [data.cache_root(), Path.home(), *([plays] if plays else []), *hide]
            command = sandbox.wrap(
                command,
                inside,
                hide=hidden,
                ro_binds=ro_binds,
                rw_binds=rw_binds,
                gpu=gpu,
                disk_bytes=limits.disk_bytes,
            )
        env = sandbox.child_env(dict(os.environ), config.threads, inside, code_root())
        group = cgroup.create(sandbox.MAX_PROCESSES)
        spec["cpu_usage_file"] = str(group.cpu_file) if group and not gpu else None  # the harness's CPU clock
        try:
            return Boxed(box, spec, supervise.spawn(command, cwd=box, env=env, limits=limits, cgroup=group))
        except BaseException:
            if group is not None:
                group.remove()
            raise
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


def discard(spawned: Boxed) -> None:
    supervise.discard(spawned.process)
    shutil.rmtree(spawned.box, ignore_errors=True)


def go(
    spawned: Boxed,
    source: str,
    seed: int,
    profile: Profile,
    config: TrainerConfig,
    prune: PruneRule | None = None,
) -> Child:
    """Hand the genome to a spawned child (the files it waits to read, then its go) and see it to its end,
    stopped early if its loss curve trails by `prune`'s rule. The files are written in place: under
    bubblewrap the child sees them through binds made at its spawn."""
    box = spawned.box
    try:
        (box / "train.py").write_text(source)
        (box / "spec.json").write_text(json.dumps({**spawned.spec, "seed": seed}))
    except BaseException:
        supervise.discard(spawned.process)  # never let go, so never reaped by `finish`
        raise
    threads = None if config.device == "cuda" else config.threads
    ran = supervise.finish(
        spawned.process,
        log_path=box / "train.log",
        deadline_s=profile.hard_limit_s,
        threads=threads,
        prune=prune.verdict if prune is not None else None,
    )
    record, tail = _read_record(box / "child.json"), _tail(box / "train.log")
    allowed = profile.budget_seconds + profile.untimed_allowance_s + profile.genome_allowance_s
    return Child(ran, ran.overrun(allowed), record, tail)


def clock_name(device: str) -> str:
    """Which clock a child's budget runs on (run.json says): CPU-seconds over its threads, or wall seconds."""
    return "wall" if device == "cuda" else "cpu"


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
        cache.tokenizer_path: inside / "data" / "tokenizer.pkl",  # trained on the train split only
    }
    tokens, rows, encoding = inputs.values() if isolated else inputs  # inside paths, or the cache's own
    spec = dict(profile=profile.to_dict(), device=config.device, threads=config.threads)
    spec.update(sandbox=str(inside), train_tokens=str(tokens), train_rows=str(rows), tokenizer=str(encoding))
    spec["confine"] = dict(uid=uid, max_processes=sandbox.MAX_PROCESSES if isolated else None)
    return inputs, results, spec


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


def code_root() -> str:
    return str(Path(__file__).resolve().parents[1])
