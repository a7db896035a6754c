"""One sandboxed child process from start to reaping: the parent's clock on it, its log capped, its kill.

`spawn` starts it and holds it at its go line (stdin); `finish` lets it go and watches it to its end. The
parent's clock and the deadline start at the go, however long the child waited (a standby child).

The child's output comes through a pipe: the first LOG_HEAD_BYTES go to the log file, the rest is counted
and only its last LOG_TAIL_BYTES are kept, so a child that prints without end fills neither the disk nor
the run directory. The child's trusted prologue (fitness.confine) writes one byte to a second pipe just
before train.py runs: the parent's monotonic clock at that byte is `genome_started`. Every WATCH_EVERY_S the
child's process tree is counted, its resident memory summed and its CPU time read (so `genome_cpu` is what
train.py used, whatever it did to its own clock); too many processes (a fork bomb that RLIMIT_NPROC has not
stopped, or cannot: root, no user namespace) or too much memory (a GPU child has no address-space limit)
and it is killed at once. At `deadline_s`, or when the child exits, the whole process
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
DRAIN_S = 2.0  # after the child is gone, how long to wait for the rest of its output
WATCH_EVERY_S = 0.5  # how often the process tree is counted, weighed and timed
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Exit:
    code: int | None  # None: killed at the deadline
    started: float  # parent's monotonic clock (time.perf_counter) at spawn and when the exit (or kill) was seen
    ended: float
    genome_started: float | None  # parent's clock when train.py was handed control; None if it never was
    genome_cpu: float | None  # CPU seconds (all processes, all threads) from then to the last look before exit
    log_dropped: int  # bytes of output beyond the log's head that were not kept
    killed: str  # why the trainer killed it before it exited ("" if it exited by itself)

    def overrun(self, allowed: float, threads: int | None) -> str:
        """How far train.py went past `allowed` seconds from its start, however the genome set its own clock,
        or "". A GPU child (threads None) is measured in wall time; a CPU child in CPU time over its threads,
        which load on the machine does not inflate and which a genome that starts more threads does."""
        if self.genome_started is None:
            return ""
        if threads is None:
            ran = self.ended - self.genome_started
            return f"train.py ran {ran:.1f} s by the trainer's clock, allowed {allowed:.0f} s" if ran > allowed else ""
        cpu, cap = self.genome_cpu or 0.0, allowed * threads
        if cpu <= cap:
            return ""
        return f"train.py used {cpu:.1f} CPU-seconds by the trainer's count, allowed {cap:.0f} ({threads} threads)"


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


@dataclass(frozen=True)
class Spawned:
    """A child process started and held at its go line: its stdin carries one line, then closes."""

    proc: subprocess.Popen
    mark: int  # read end of the mark pipe
    limits: sandbox.Limits

    def alive(self) -> bool:
        return self.proc.poll() is None


def spawn(command: list[str], *, cwd: Path, env: dict, limits: sandbox.Limits) -> Spawned:
    """Start `command` (which gets the mark pipe's write end as $EVOLVE_MARK_FD); it may prepare, but must
    wait for a line on stdin before it does anything on the genome's behalf (see `finish`)."""
    mark_read, mark_write = os.pipe()
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env={**env, MARK_ENV: str(mark_write)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.PIPE,
        start_new_session=True,
        pass_fds=(mark_write,),
        preexec_fn=lambda: sandbox.set_limits(limits),
    )
    os.close(mark_write)
    return Spawned(proc, mark_read, limits)


def finish(child: Spawned, *, log_path: Path, deadline_s: float) -> Exit:
    """Let a spawned child go and reap it and all it started. Its clock (`started`, the deadline) starts
    here, at the go line, however long ago it was spawned."""
    started = time.perf_counter()
    proc = child.proc
    try:
        proc.stdin.write(b"go\n")
        proc.stdin.close()
    except BrokenPipeError:  # it died while it waited: what it printed says why
        pass
    log, watch = CappedLog(log_path), _Watch()
    try:
        _watch(proc, child.mark, log, child.limits, started + deadline_s, watch)
        ended = time.perf_counter()
    finally:
        _kill_group(proc)
        _drain(proc.stdout.fileno(), log)
        proc.stdout.close()
        log.close()
    code = None if watch.killed else proc.returncode
    return Exit(code, started, ended, watch.genome_started, watch.genome_cpu(), log.dropped, watch.killed)


def discard(child: Spawned) -> None:
    """A spawned child that will not be used: killed with all it started, its pipes closed."""
    _kill_group(child.proc)
    for stream in (child.proc.stdin, child.proc.stdout):
        try:
            stream.close()
        except BrokenPipeError:
            pass
    os.close(child.mark)


@dataclass
class _Watch:
    """What the parent saw of one child: the mark, the tree's CPU time then and at its last look, why it
    killed it. (Not wait4's rusage: bubblewrap's own processes do not pass their children's time on.)"""

    genome_started: float | None = None
    cpu_at_mark: float = 0.0
    cpu_seen: float = 0.0
    killed: str = ""

    def genome_cpu(self) -> float | None:
        return None if self.genome_started is None else max(0.0, self.cpu_seen - self.cpu_at_mark)

    def look(self, root: int, limits: sandbox.Limits) -> None:
        """Count, weigh and time the process tree; kill-worthy excess goes to `killed`."""
        tree = _tree(root)
        self.cpu_seen = max(self.cpu_seen, sum(tree.values()) / CLOCK_TICKS)
        self.killed = _excess(list(tree), limits)


def _watch(
    proc: subprocess.Popen, mark: int, log: CappedLog, limits: sandbox.Limits, deadline: float, watch: _Watch
) -> None:
    """Until the child exits: copy its output, note the mark, kill it at the deadline or when it has started
    too many processes or holds too much memory."""
    out, checked = proc.stdout.fileno(), time.perf_counter()
    watching = [out, mark]
    try:
        while proc.poll() is None:
            now = time.perf_counter()
            if now >= deadline:
                watch.killed = "deadline"
                return
            if now - checked >= WATCH_EVERY_S:
                checked = now
                watch.look(proc.pid, limits)
                if watch.killed:
                    return
            for fd in select.select(watching, [], [], min(deadline - now, WATCH_EVERY_S))[0]:
                data = os.read(fd, 1 << 16)
                if fd == out:
                    log.write(data)
                elif data and watch.genome_started is None:
                    watch.genome_started = time.perf_counter()
                    watch.cpu_at_mark = watch.cpu_seen = sum(_tree(proc.pid).values()) / CLOCK_TICKS
                if not data:
                    watching.remove(fd)
        if watch.genome_started is None and mark in watching and select.select([mark], [], [], 0)[0]:
            watch.genome_started = time.perf_counter() if os.read(mark, 1) else None  # exited before it was read
    finally:
        os.close(mark)


def _excess(tree: list[int], limits: sandbox.Limits) -> str:
    """Why the process tree must die now, or ""."""
    if len(tree) > limits.processes:
        return f"started {len(tree)} processes (limit {limits.processes})"
    if sum(_resident_bytes(pid) for pid in tree) <= limits.memory_bytes:  # cheap, and never less than PSS
        return ""
    held = sum(_proportional_bytes(pid) for pid in tree)  # forked processes share pages: count them once
    if held > limits.memory_bytes:
        return f"held {held / 2**30:.1f} GiB of memory (limit {limits.memory_bytes / 2**30:.1f} GiB)"
    return ""


def _tree(root: int) -> dict[int, int]:
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
