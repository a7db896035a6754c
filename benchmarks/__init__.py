"""Benchmarks: each `python -m benchmarks.NAME` writes benchmarks/results/NAME.json (+ .png)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def commit() -> str:
    """The git commit the benchmark ran from: $EVOLVE_COMMIT for a copy without .git, else 'unknown'."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
    except FileNotFoundError:  # no git at all
        head = None
    return (head.stdout.strip() if head else "") or os.environ.get("EVOLVE_COMMIT", "unknown")
