"""Benchmarks: each `python -m benchmarks.NAME` writes benchmarks/results/NAME.json (+ .png)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def commit() -> str:
    """The git commit the benchmark ran from: $EVOLVE_COMMIT where set (a copy of the tree whose own .git, if
    any, is not ours: the device machine's copy has a snapshot commit of its own), else git's HEAD, else
    'unknown'."""
    if os.environ.get("EVOLVE_COMMIT"):
        return os.environ["EVOLVE_COMMIT"]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
    except FileNotFoundError:  # no git at all
        head = None
    return (head.stdout.strip() if head else "") or "unknown"


def ready_scorer(scorer, profile, threads: int, timeout: float, name: str) -> float:
    """Warm `scorer` for `profile` as a run's worker does at start; the seconds it took. Exits if it fails."""
    started = time.perf_counter()
    scorer.warm(profile.to_dict(), threads)
    warm_up = scorer.ready(timeout=timeout)
    if warm_up["status"] != "ok":
        raise SystemExit(f"{name}: the scorer did not start: {warm_up.get('reason')}")
    return time.perf_counter() - started
