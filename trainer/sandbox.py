"""What a training child may touch.

Protects against (with bubblewrap): reading held-out data (the token cache and the raw plays are hidden),
reading secrets (the environment is rebuilt from an allowlist; $HOME is hidden), writing anywhere but its
own directory (the rest of the filesystem is read-only, /tmp is private), network access (no network
namespace devices but loopback), signalling other processes (own PID namespace), and huge files/cores
(rlimits). Does not protect against: kernel exploits, GPU side channels, exhausting host memory (the
memory limit is only set for CPU children, since CUDA reserves vast virtual address space), or CPU
time stolen from neighbours. Without bubblewrap or user namespaces only the environment scrub and the
rlimits apply; evolve says so once, loudly.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import resource
import shutil
import signal
import subprocess
import sys
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
MAX_FILE_BYTES = 8 * 2**30  # no file a child writes may exceed this
CPU_MEMORY_BYTES = 16 * 2**30  # address-space limit for CPU children


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
        TORCHINDUCTOR_CACHE_DIR=str(sandbox / ".inductor"),
        TRITON_CACHE_DIR=str(sandbox / ".triton"),
    )
    return env


def set_limits(cpu_child: bool) -> None:
    """preexec_fn: runs in the forked child before exec."""
    _die_with_parent()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
    if cpu_child:
        resource.setrlimit(resource.RLIMIT_AS, (CPU_MEMORY_BYTES, CPU_MEMORY_BYTES))


def _die_with_parent() -> None:
    """The child gets SIGKILL when the process that started it dies (a killed Ray worker leaves no orphan)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


@functools.cache
def bwrap_path() -> str | None:
    """bubblewrap, if installed and allowed to create namespaces here (checked once per process)."""
    path = shutil.which("bwrap")
    if path is None:
        logger.warning("SANDBOX OFF: bubblewrap is not installed; children can read the disk and use the network")
        return None
    probe = subprocess.run([path, "--ro-bind", "/", "/", "--unshare-all", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        logger.warning(
            "SANDBOX OFF: bubblewrap can't create namespaces here (%s); children are not isolated",
            probe.stderr.strip()[:200],
        )
        return None
    return path


def _covered(path: Path, hidden: list[Path]) -> bool:
    return any(path == h or h in path.parents for h in hidden)


def wrap(command: list[str], sandbox: Path, *, hide: list[Path], binds: dict[Path, Path], gpu: bool) -> list[str]:
    """Prefix `command` with bubblewrap: read-only root, private /tmp, hidden paths, one writable dir."""
    bwrap = bwrap_path()
    if bwrap is None:
        return command
    args = [
        bwrap,
        "--ro-bind",
        "/",
        "/",
        "--dev-bind" if gpu else "--dev",
        "/dev",
        *(["/dev"] if gpu else []),
        "--proc",
        "/proc",
    ]
    hidden = [Path("/tmp"), *(h.resolve() for h in hide if h.exists())]  # /tmp: private to the child
    for h in hidden:
        args += ["--tmpfs", str(h)]
    # Python itself and our code must stay visible even when they live under a hidden path ($HOME)...
    keeps = [
        k for k in {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), *_code_roots()} if _covered(k, hidden)
    ]
    for keep in keeps:
        args += ["--ro-bind", str(keep), str(keep)]
    for h in hidden:  # ...but what is hidden inside them (the raw held-out plays) stays hidden
        if any(k in h.parents for k in keeps):
            args += ["--tmpfs", str(h)]
    args += ["--bind", str(sandbox), str(sandbox)]
    for src, dst in binds.items():
        args += ["--ro-bind", str(src), str(dst)]
    args += ["--unshare-all", "--die-with-parent", "--new-session", "--chdir", str(sandbox)]
    return args + command


def _code_roots() -> list[Path]:
    import fitness

    return [Path(fitness.__file__).resolve().parents[1]]
