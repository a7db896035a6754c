"""One sandboxed child process from start to reaping: the parent's clock on it, its log capped, its kill.

The child's output comes through a pipe: the first LOG_HEAD_BYTES go to the log file, the rest is counted
and only its last LOG_TAIL_BYTES are kept, so a child that prints without end fills neither the disk nor
the run directory. The child's trusted prologue (fitness.confine) writes one byte to a second pipe just
before train.py runs: the parent's monotonic clock at that byte is `genome_started`. Every WATCH_EVERY_S the
child's process tree is counted and its resident memory summed; too many processes (a fork bomb that
RLIMIT_NPROC has not stopped, or cannot: root, no user namespace) or too much memory (a GPU child has no
address-space limit) and it is killed at once. At `deadline_s`, or when the child exits, the whole process
group is killed: under bubblewrap that takes the child's PID namespace, and every process the genome started.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from trainer import sandbox

LOG_HEAD_BYTES = 4 * 2**20
LOG_TAIL_BYTES = 64 * 2**10
MARK_ENV = "EVOLVE_MARK_FD"  # read (and removed) by fitness.confine
DRAIN_S = 2.0
WATCH_EVERY_S = 0.5  # how often the process tree is counted and weighed
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")  # after the child is gone, how long to wait for the rest of its output


@dataclass(frozen=True)
class Exit:
    code: int | None  # None: killed at the deadline
    started: float  # parent's monotonic clock (time.perf_counter) at spawn and when the exit (or kill) was seen
    ended: float
    genome_started: float | None  # parent's clock when train.py was handed control; None if it never was
    log_dropped: int  # bytes of output beyond the log's head that were not kept
    killed: str  # why the trainer killed it before it exited ("" if it exited by itself)


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


def run(command: list[str], *, cwd: Path, env: dict, limits: sandbox.Limits, log_path: Path, deadline_s: float) -> Exit:
    """Run `command` (which gets the mark pipe's write end as $EVOLVE_MARK_FD) and reap it and all it started."""
    mark_read, mark_write = os.pipe()
    started = time.perf_counter()
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env={**env, MARK_ENV: str(mark_write)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        pass_fds=(mark_write,),
        preexec_fn=lambda: sandbox.set_limits(limits),
    )
    os.close(mark_write)
    log = CappedLog(log_path)
    try:
        genome_started, killed = _watch(proc, mark_read, log, limits, started + deadline_s)
        ended = time.perf_counter()
    finally:
        _kill_group(proc)
        _drain(proc.stdout.fileno(), log)
        proc.stdout.close()
        log.close()
    return Exit(None if killed else proc.returncode, started, ended, genome_started, log.dropped, killed)


def _watch(
    proc: subprocess.Popen, mark: int, log: CappedLog, limits: sandbox.Limits, deadline: float
) -> tuple[float | None, str]:
    """Until the child exits: copy its output, note the mark, kill it at the deadline or when it has started
    too many processes or holds too much memory. Returns (mark time, why it was killed or "")."""
    out, genome_started, checked = proc.stdout.fileno(), None, time.perf_counter()
    watching = [out, mark]
    try:
        while proc.poll() is None:
            now = time.perf_counter()
            if now >= deadline:
                return genome_started, "deadline"
            if now - checked >= WATCH_EVERY_S:
                checked, excess = now, _excess(proc.pid, limits)
                if excess:
                    return genome_started, excess
            for fd in select.select(watching, [], [], min(deadline - now, WATCH_EVERY_S))[0]:
                data = os.read(fd, 1 << 16)
                if fd == out:
                    log.write(data)
                elif data and genome_started is None:
                    genome_started = time.perf_counter()
                if not data:
                    watching.remove(fd)
        if genome_started is None and mark in watching and select.select([mark], [], [], 0)[0] and os.read(mark, 1):
            genome_started = time.perf_counter()  # it exited before the mark was read: late, but not missing
        return genome_started, ""
    finally:
        os.close(mark)


def _excess(root: int, limits: sandbox.Limits) -> str:
    """Why the process tree under `root` must die now, or ""."""
    tree = _tree(root)
    if len(tree) > limits.processes:
        return f"started {len(tree)} processes (limit {limits.processes})"
    if sum(_resident_bytes(pid) for pid in tree) <= limits.memory_bytes:  # cheap, and never less than PSS
        return ""
    held = sum(_proportional_bytes(pid) for pid in tree)  # forked processes share pages: count them once
    if held > limits.memory_bytes:
        return f"held {held / 2**30:.1f} GiB of memory (limit {limits.memory_bytes / 2**30:.1f} GiB)"
    return ""


def _tree(root: int) -> list[int]:
    """`root` and its descendants (under bubblewrap: every process in the child's PID namespace)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue  # gone meanwhile
            parent = int(stat[stat.rindex(b")") + 2 :].split()[1])
            children.setdefault(parent, []).append(int(name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def _resident_bytes(pid: int) -> int:
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


def _drain(fd: int, log: CappedLog) -> None:
    until = time.perf_counter() + DRAIN_S
    while (left := until - time.perf_counter()) > 0 and select.select([fd], [], [], left)[0]:
        data = os.read(fd, 1 << 16)
        if not data:
            return
        log.write(data)


def _kill_group(proc: subprocess.Popen) -> None:
    """Whatever the child started (forks included) goes with it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
