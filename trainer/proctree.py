"""A training child's process tree as /proc shows it: who is in it, the CPU time each used, its memory,
and what of that must end it now (the watchdog's looks in trainer.supervise)."""

from __future__ import annotations

import os

from trainer import sandbox

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def excess(tree: list[int], limits: sandbox.Limits) -> str:
    """Why the process tree must die now, or ""."""
    if len(tree) > limits.processes:
        return f"started {len(tree)} processes (limit {limits.processes})"
    if sum(resident_bytes(pid) for pid in tree) <= limits.memory_bytes:  # cheap, and never less than PSS
        return ""
    held = sum(_proportional_bytes(pid) for pid in tree)  # forked processes share pages: count them once
    if held > limits.memory_bytes:
        return f"held {held / 2**30:.1f} GiB of memory (limit {limits.memory_bytes / 2**30:.1f} GiB)"
    return ""


def tree(root: int) -> dict[int, int]:
    """`root` and its descendants (under bubblewrap: every process in the child's PID namespace), each with
    the CPU time it has used, in clock ticks (user + system, all threads, its reaped children's included)."""
    parents, ticks = {}, {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
                parents[int(name)], ticks[int(name)] = int(fields[1]), sum(int(v) for v in fields[11:15])
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    tree, todo = {}, [root]
    while todo:
        pid = todo.pop()
        tree[pid] = ticks.get(pid, 0)
        todo += children.get(pid, [])
    return tree


def resident_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


def _proportional_bytes(pid: int) -> int:
    """PSS: resident pages, each shared page divided among the processes sharing it."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            pss = next(line for line in f if line.startswith("Pss:"))
        return int(pss.split()[1]) * 1024
    except (OSError, ValueError, IndexError, StopIteration):
        return 0


def cpu_seconds(tree: dict[int, int]) -> float:
    """The CPU time of a `tree` (as `tree` returns it): what its processes used and what they reaped."""
    return sum(tree.values()) / CLOCK_TICKS
