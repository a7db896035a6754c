"""What the parent sees of a running child (trainer.supervise): its output, capped; the mark; its loss curve;
its processes, memory and CPU time; and why it kills it.

The child's output comes through a pipe: the first LOG_HEAD_BYTES go to the log file, the rest is counted
and only its last LOG_TAIL_BYTES are kept, so a child that prints without end fills neither the disk nor
the run directory. Every WATCH_EVERY_S the child's process tree is counted and its resident memory summed,
and its CPU time read: from its cgroup (trainer.cgroup) or, without one, from the tree. Too many processes
(a fork bomb that RLIMIT_NPROC has not stopped, or cannot: root, no user namespace) or too much memory (a
GPU child has no address-space limit) and it is killed at once. A CPU child's clock
is its CPU-seconds over its threads, but at least 1/MAX_STRETCH of the wall clock; a GPU child's is the wall
clock. A caller's `prune` rule is asked after each point of the loss curve and may stop the child there.
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fitness.curves import Curve, Reader
from trainer import cgroup as cgroups
from trainer import gpumemory, proctree, sandbox

logger = logging.getLogger(__name__)

LOG_HEAD_BYTES = 4 * 2**20
LOG_TAIL_BYTES = 64 * 2**10
DRAIN_S = 2.0  # after the child is gone, how long to wait for the rest of its output
WATCH_EVERY_S = 0.5  # how often the process tree is counted, weighed and timed
MAX_STRETCH = 4.0  # a CPU child's clock runs at least this fraction of the wall clock's speed: 1 / MAX_STRETCH
Prune = Callable[[Curve], str]  # the child's loss curve so far -> why to stop it now, or "" (fitness.curves)


class CappedLog:
    """The head of a stream in a file, the tail in memory; `close` appends the tail after a marker."""

    def __init__(self, path: Path):
        self.file = open(path, "wb")
        self.written, self.dropped = 0, 0
        self.tail: deque[bytes] = deque()
        self.tail_bytes = 0

    def write(self, data: bytes) -> None:
        room = max(0, LOG_HEAD_BYTES - self.written)
        self.file.write(data[:room])
        self.written += min(room, len(data))
        if len(data) > room:
            self.tail.append(data[room:])
            self.tail_bytes += len(data) - room
            while self.tail_bytes - len(self.tail[0]) >= LOG_TAIL_BYTES:
                self.tail_bytes -= len(self.tail[0])
                self.dropped += len(self.tail.popleft())

    def close(self) -> None:
        if self.tail:
            kept = b"".join(self.tail)
            self.dropped += max(0, len(kept) - LOG_TAIL_BYTES)
            self.file.write(b"\n[evolve: %d bytes of output not kept]\n" % self.dropped)
            self.file.write(kept[-LOG_TAIL_BYTES:])
        self.file.close()


@dataclass
class Watch:
    """What the parent saw of one child: its CPU time at the go, at the mark and at its last look, its peak
    memory, why it killed it. CPU time from its cgroup, else its process tree (not wait4's rusage:
    bubblewrap's own processes do not pass their children's time on)."""

    cgroup: cgroups.Cgroup | None
    threads: int | None
    started: float
    prune: Prune | None = None
    curve: Reader = field(default_factory=Reader)
    pruned: str = ""
    cpu_at_go: float = 0.0
    genome_started: float | None = None
    cpu_at_mark: float = 0.0
    cpu_seen: float = 0.0
    peak_memory: int = 0
    peak_gpu_memory: int = 0
    killed: str = ""

    def __post_init__(self):
        self.nvml = gpumemory.open_nvml() if self.threads is None else None  # a GPU child's memory on the card

    def genome_cpu(self) -> float | None:
        return None if self.genome_started is None else max(0.0, self.cpu_seen - self.cpu_at_mark)

    def elapsed(self, now: float) -> float:
        """Seconds since the go on the child's clock."""
        wall = now - self.started
        if self.threads is None:
            return wall
        return max((self.cpu_seen - self.cpu_at_go) / self.threads, wall / MAX_STRETCH)

    def cpu_now(self, root: int) -> float:
        if self.cgroup is not None:
            return self.cgroup.usage().cpu_seconds
        return proctree.cpu_seconds(proctree.tree(root))

    def look(self, root: int, limits: sandbox.Limits) -> None:
        """Count, weigh and time the process tree; kill-worthy excess goes to `killed`."""
        tree = proctree.tree(root)
        if self.cgroup is None:
            self.cpu_seen = max(self.cpu_seen, proctree.cpu_seconds(tree))
        else:
            self.last_look()
        if self.cgroup is None or self.cgroup.memory_file is None:  # no kernel count of its memory (v2 without
            self.peak_memory = max(self.peak_memory, sum(proctree.resident_bytes(pid) for pid in tree))  # memory)
        if self.nvml is not None:
            try:
                self.peak_gpu_memory = max(self.peak_gpu_memory, self.nvml.used_bytes(set(tree)))
            except gpumemory.NvmlError as e:
                logger.warning("GPU memory is no longer measured for this child: %s", e)
                self.nvml = None
        self.killed = proctree.excess(list(tree), limits)

    def last_look(self) -> None:
        """The kernel's count, exact once every process is gone (the /proc tree's last look stands)."""
        if self.cgroup is not None:
            usage = self.cgroup.usage()
            self.cpu_seen = max(self.cpu_seen, usage.cpu_seconds)
            self.peak_memory = max(self.peak_memory, usage.peak_memory_bytes)


def watch(
    proc: subprocess.Popen,
    pipes: tuple[int, int],
    log: CappedLog,
    limits: sandbox.Limits,
    deadline_s: float,
    watch: Watch,
) -> None:
    """Until the child exits: copy its output, note the mark, take its curve, kill it at the deadline (on its
    clock), when it has started too many processes or holds too much memory, or when its curve says prune."""
    out, checked = proc.stdout.fileno(), time.perf_counter()
    mark, curve = pipes
    watching = [out, mark, curve]
    try:
        while proc.poll() is None:
            now = time.perf_counter()
            if watch.elapsed(now) >= deadline_s:
                watch.killed = "deadline"
                return
            if now - checked >= WATCH_EVERY_S:
                checked = now
                watch.look(proc.pid, limits)
                if watch.killed:
                    return
            wait = min(deadline_s - watch.elapsed(now), WATCH_EVERY_S)
            for fd in select.select(watching, [], [], max(wait, 0.0))[0]:
                data = os.read(fd, 1 << 16)
                if not data:
                    watching.remove(fd)
                _take(fd, data, (out, mark, curve), log, watch, proc.pid)
            if watch.killed:
                return
        if watch.genome_started is None and mark in watching and select.select([mark], [], [], 0)[0]:
            watch.genome_started = time.perf_counter() if os.read(mark, 1) else None  # exited before it was read
            watch.cpu_at_mark = watch.cpu_at_go
        while curve in watching and select.select([curve], [], [], 0)[0] and (data := os.read(curve, 1 << 16)):
            watch.curve.feed(data)  # the last points, sent as it submitted
    finally:
        os.close(mark)
        os.close(curve)


def _take(fd: int, data: bytes, pipes: tuple[int, int, int], log: CappedLog, watch: Watch, pid: int) -> None:
    """One read from one of the child's pipes: its output, its mark, or its curve."""
    out, mark, curve = pipes
    if fd == out:
        log.write(data)
    elif fd == mark and data and watch.genome_started is None:
        watch.genome_started = time.perf_counter()
        watch.cpu_at_mark = watch.cpu_seen = watch.cpu_now(pid)
    elif fd == curve and watch.curve.feed(data) and watch.prune is not None:
        watch.pruned = watch.prune(watch.curve.curve())
        if watch.pruned:
            watch.killed = "pruned"


def drain(fd: int, log: CappedLog) -> None:
    until = time.perf_counter() + DRAIN_S
    while (left := until - time.perf_counter()) > 0 and select.select([fd], [], [], left)[0]:
        data = os.read(fd, 1 << 16)
        if not data:
            return
        log.write(data)
