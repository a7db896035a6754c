"""CPU clocks: what a budget counts on a CPU profile, where load on the machine stretches the wall clock.

`cgroup_seconds` reads a cgroup's CPU time (v1 cpuacct.usage in nanoseconds, v2 cpu.stat's usage_usec):
every process in it, reaped by whomever. The trainer reads the child's from outside (trainer.cgroup); the
child's harness reads its own the same way, through the file the trainer names in its spec.
`process_seconds` is the fallback where there is no cgroup: this process and the children it reaped.
"""

from __future__ import annotations

import os
from pathlib import Path


def cgroup_seconds(path: Path | str) -> float:
    with open(path, "rb") as f:
        text = f.read()
    if str(path).endswith("cpu.stat"):
        usec = next(line.split()[1] for line in text.splitlines() if line.startswith(b"usage_usec "))
        return int(usec) / 1e6
    return int(text) / 1e9


def process_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system
