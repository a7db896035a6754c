"""The run directory itself: what makes a directory a run, the single-writer lock, atomic small files.

A run directory holds `.git/` (one commit per genome), `archive/` (Parquet segments, one row per
evaluation), `population.json` (the marker naming the seed genome) and `population.lock`.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from population.errors import RunDirError

MARKER = "population.json"
LOCK = "population.lock"
ARCHIVE = "archive"


def check_run_dir(run_dir: Path, seed_source: str | None) -> bool:
    """True for a new run, False to resume; RunDirError for anything that is neither."""
    if (run_dir / MARKER).is_file():
        return False
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"run directory {str(run_dir)!r} is not a directory")
    if (run_dir / ".git").exists() or (run_dir / ARCHIVE).exists():
        if is_live(run_dir):  # its creator holds it and has not written the marker yet
            raise RunDirError(f"{str(run_dir)!r} is a run still being created; try again in a moment")
        raise RunDirError(f"{str(run_dir)!r} is not an evolve run (it has .git or archive/ but no {MARKER})")
    if seed_source is None:
        raise RunDirError(f"{str(run_dir)!r} is not a run directory (no {MARKER}) and no seed source was given")
    return True


def lock(run_dir: Path) -> int:
    """An exclusive lock on the run (released when the fd is closed or the process dies)."""
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunDirError(f"run directory {str(run_dir)!r} is open in another process") from None
    return fd


def is_live(run_dir: Path) -> bool:
    """Whether a process holds the run's lock now (a shared lock is refused while a writer has it)."""
    try:
        fd = os.open(run_dir / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops a shared lock we got


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` so a reader sees the old file or the new one, never a torn one."""
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
