"""What a training child may touch, and the limits it runs under.

With bubblewrap (where the kernel lets it create namespaces) the child gets:
- a read-only view of the filesystem, with the token cache, $HOME, the raw plays and the run directory
  replaced by empty read-only directories (held-out data, secrets, other genomes and the archive are out
  of sight and out of reach);
- one writable place, a size-limited tmpfs at /tmp that holds its sandbox directory (its disk quota: a
  child that fills it gets ENOSPC, the host disk never sees it), a small private /dev/shm, and two files
  bound from the host for its results (child.json, model.pt2), each capped by RLIMIT_FSIZE;
- no network (own network namespace, loopback only), its own PID namespace (it sees and signals only its
  own processes, and they all die with it), no capabilities;
- when the trainer runs as root: a uid of its own (CHILD_UID_BASE + the trainer's pid), taken by the
  child's trusted prologue (fitness.confine) before train.py runs, so RLIMIT_NPROC, which never applies to
  root, caps its processes (a fork bomb stops at MAX_PROCESSES), and files outside are as closed to it as
  to any other user.
Always: an environment rebuilt from an allowlist (no API keys, credentials or proxies), rlimits on core
dumps, file size, CPU time and (CPU children) address space, death with the trainer (PDEATHSIG); and the
trainer's watchdog (trainer.supervise) on its process count and resident memory. Where the kernel lets the
trainer make one, a cgroup per child (trainer.cgroup) counts its CPU time, peak memory and tasks, whoever
reaps its processes, and caps its tasks at MAX_PROCESSES even as root.

Does not protect against: kernel exploits, GPU side channels, host memory a GPU child takes between two
looks of the watchdog (no address-space limit there: CUDA reserves vast virtual ranges), CPU time taken
from neighbours. Without
bubblewrap or user namespaces only the environment scrub and the rlimits apply - the child can read
whatever the trainer's user can, use the network, and fill the disk one capped file at a time; evolve
says so once, loudly (SANDBOX OFF).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

ENV_ALLOW = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TERM",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "LD_LIBRARY_PATH",
    "CUDA_HOME",
    "CUDA_PATH",
)
MAX_PROCESSES = 512  # RLIMIT_NPROC, where it applies (threads count too: torch pools, compile workers)
WATCH_PROCESSES = 128  # processes (not threads); more and the trainer kills the child at once
CHILD_UID_BASE = 200_000  # a root trainer's children run as CHILD_UID_BASE + (trainer pid % CHILD_UID_SPAN)
CHILD_UID_SPAN = 100_000
SHM_BYTES = 256 * 2**20  # the child's private /dev/shm


@dataclass(frozen=True)
class Limits:
    disk_bytes: int  # size of the child's writable tmpfs, and RLIMIT_FSIZE for every file it writes
    memory_bytes: int  # resident memory of the child and all it started (watched by trainer.supervise)
    address_space: bool  # also RLIMIT_AS = memory_bytes per process (CPU children; CUDA reserves far more)
    cpu_seconds: int  # RLIMIT_CPU per process: a backstop for a process that outlives the kill
    processes: int = WATCH_PROCESSES  # processes the child may have at once (watched by trainer.supervise)

    @classmethod
    def for_child(cls, disk_mb: int, memory_mb: int, gpu: bool, hard_limit_s: float) -> Limits:
        """CPU time: all cores for the whole hard limit, which no honest child can exceed."""
        cpu_seconds = int(hard_limit_s * (os.cpu_count() or 1)) + 60
        return cls(disk_mb * 2**20, memory_mb * 2**20, not gpu, cpu_seconds)


def child_env(parent: dict[str, str], threads: int, sandbox: Path, pythonpath: str) -> dict[str, str]:
    """A fresh environment from an allowlist: no API keys, credentials or proxy settings survive."""
    env = {k: v for k, v in parent.items() if k in ENV_ALLOW}
    env.update(
        HOME=str(sandbox),
        TMPDIR=str(sandbox),
        PYTHONPATH=pythonpath,
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        # A thread waiting for one that lost its core sleeps instead of spinning: on a CPU profile the budget
        # is CPU time, which spinning would spend on nothing.
        OMP_WAIT_POLICY="PASSIVE",
        TORCHINDUCTOR_CACHE_DIR=str(sandbox / ".inductor"),
        TRITON_CACHE_DIR=str(sandbox / ".triton"),
    )
    return env


def child_uid() -> int | None:
    """The uid a root trainer's children take; None when the trainer is not root (it keeps its own)."""
    return CHILD_UID_BASE + os.getpid() % CHILD_UID_SPAN if os.geteuid() == 0 else None


def set_limits(limits: Limits) -> None:
    """preexec_fn: runs in the forked child before exec."""
    _die_with_parent()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.disk_bytes, limits.disk_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
    if limits.address_space:
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))


def _die_with_parent() -> None:
    """The child gets SIGKILL when the process that started it dies (a killed Ray worker leaves no orphan)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


@functools.cache
def bwrap_path() -> str | None:
    """bubblewrap, if installed and allowed to create namespaces here (checked, and reported, once)."""
    path = shutil.which("bwrap")
    if path is None:
        logger.warning(
            "SANDBOX OFF: bubblewrap is not installed; children run with only an environment scrub and "
            "rlimits: they can read the disk, write where this user can, and use the network"
        )
        return None
    probe = subprocess.run([path, "--ro-bind", "/", "/", "--unshare-all", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        logger.warning(
            "SANDBOX OFF: bubblewrap can't create namespaces here (%s); children run with only an environment "
            "scrub and rlimits: they can read the disk, write where this user can, and use the network",
            probe.stderr.strip()[:200] or f"exit code {probe.returncode}",
        )
        return None
    return path


def _covered(path: Path, hidden: list[Path]) -> bool:
    return any(path == h or h in path.parents for h in hidden)


def box_inside(box: Path) -> Path:
    """Where the child sees its sandbox directory: in its own /tmp, whatever the host path."""
    return Path("/tmp") / box.name


def wrap(
    command: list[str],
    box: Path,
    *,
    hide: list[Path],
    ro_binds: dict[Path, Path],
    rw_binds: dict[Path, Path],
    gpu: bool,
    disk_bytes: int,
) -> list[str]:
    """Prefix `command` with bubblewrap. `box` (see box_inside) exists only inside: a directory in the child's
    /tmp tmpfs (its quota), holding `ro_binds` and `rw_binds` (host path -> path inside)."""
    bwrap = bwrap_path()
    if bwrap is None:
        return command
    args = [bwrap, "--ro-bind", "/", "/", *(["--dev-bind", "/dev", "/dev"] if gpu else ["--dev", "/dev"])]
    args += ["--perms", "1777", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm", "--proc", "/proc"]
    requested = [h.resolve() for h in hide if h.exists()]
    # A path inside another hidden one is hidden with it (mounting it first would be buried by the outer tmpfs).
    top = [h for h in requested if not _covered(h, [Path("/tmp"), *(o for o in requested if o != h)])]
    for h in top:
        args += ["--tmpfs", str(h)]
    args += ["--perms", "1777", "--size", str(disk_bytes), "--tmpfs", "/tmp"]
    # Python itself and our code must stay visible even when they live under a hidden path ($HOME, /tmp)...
    prefixes = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), *_code_roots()}
    keeps = [k for k in prefixes if _covered(k, [Path("/tmp"), *top])]
    for keep in keeps:
        # The directories leading to it, inside the hidden tmpfs, must be traversable by the child's own uid
        # (bwrap would create them for the bind as 0700).
        cover = next(h for h in [Path("/tmp"), *top] if _covered(keep, [h]))
        for parent in reversed([d for d in keep.parents if cover in d.parents]):
            args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", str(keep), str(keep)]
    inner = [h for h in requested if any(k in h.parents for k in keeps)]
    for h in inner:  # ...but what is hidden inside them (the raw held-out plays) stays hidden
        args += ["--tmpfs", str(h)]
    args += ["--perms", "0777", "--dir", str(box)]
    for src, dst in ro_binds.items():
        args += ["--ro-bind", str(src), str(dst)]
    for src, dst in rw_binds.items():
        args += ["--bind", str(src), str(dst)]
    for h in [*top, *inner, *([] if gpu else [Path("/dev")])]:  # empty and read-only: no unlimited scratch space
        args += ["--remount-ro", str(h)]
    args += _namespaces() + ["--die-with-parent", "--new-session", "--chdir", str(box)]
    return args + command


def _namespaces() -> list[str]:
    """As root, no user namespace: the child's prologue must be able to take its own uid (see child_uid),
    which a namespace mapping only root could not give. It keeps just the capabilities to do that."""
    if os.geteuid() != 0:
        return ["--unshare-all"]
    keep = ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return keep + ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]


def _code_roots() -> list[Path]:
    import fitness

    return [Path(fitness.__file__).resolve().parents[1]]
