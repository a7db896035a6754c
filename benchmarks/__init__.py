"""Benchmarks: each `python -m benchmarks.NAME` writes benchmarks/results/NAME.json (+ .png)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def commit() -> str:
    """The git commit the benchmark ran from ('unknown' outside a checkout)."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
    return head.stdout.strip() or "unknown"
