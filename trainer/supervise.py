"""One sandboxed child process from start to reaping: the parent's clock on it, its log capped, its kill.

`spawn` starts it (in its cgroup) and holds it at its go line (stdin); `finish` lets it go and watches it
to its end (the watching itself, trainer.watch: the capped log, the watchdog, the pipes). The parent's clock
and the deadline start at the go, however long the child waited (a standby). The child's output comes
through a pipe, capped. The child's trusted prologue (fitness.confine) writes one byte to a second pipe just
before train.py runs: the parent's monotonic clock at that byte is `genome_started`. The watchdog
(trainer.watch) reads the child's CPU time from its cgroup (trainer.cgroup: every process it ever started,
reaped by whomever) or, without one, from its process tree, so `genome_cpu` is what train.py used, whatever
it did to its own clock; too many processes or too much memory and it is killed at once.
The child's time runs on one of two clocks: a GPU child's on the wall clock; a CPU child's (`threads` given)
on its CPU-seconds over its threads, which load on the machine does not stretch (a starved child is not
killed for being slow), but at least 1/MAX_STRETCH of the wall clock (a child that sleeps, or is starved
beyond that, still ends). At `deadline_s` on that clock, or when the child exits, the whole process group is
killed (under bubblewrap: the child's PID namespace, every process the genome started); then its cgroup is
emptied (a process that left both) and removed.
A third pipe carries the child's loss curve from the harness (fitness.curves); a caller's `prune` rule is
asked after each point and may stop the child there: the genome's own losses can stop it, never score it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from fitness.curves import Curve
from trainer import cgroup as cgroups
from trainer import sandbox
from trainer import watch as watching

MARK_ENV = "EVOLVE_MARK_FD"  # read (and removed) by fitness.confine
CURVE_ENV = "EVOLVE_CURVE_FD"  # taken (and removed) by fitness.harness: the loss curve's pipe


@dataclass(frozen=True)
class Exit:
    code: int | None  # None: killed at the deadline
    started: float  # parent's monotonic clock (time.perf_counter) at spawn and when the exit (or kill) was seen
    ended: float
    genome_started: float | None  # parent's clock when train.py was handed control; None if it never was
    genome_cpu: float | None  # CPU seconds (all processes, all threads) from then to its end
    log_dropped: int  # bytes of output beyond the log's head that were not kept
    killed: str  # why the trainer killed it before it exited ("" if it exited by itself)
    seconds: float  # from the go to its end, on its clock (see the module's docstring)
    peak_memory_bytes: int  # by the kernel (its cgroup), else the largest resident sum the watchdog saw
    threads: int | None  # a CPU child's clock divides its CPU time by these; None: a GPU child's wall clock
    curve: Curve = ()  # the loss curve the harness sent (fitness.curves: the genome's own losses)
    pruned: str = ""  # why the trainer stopped it early on its curve ("" if it did not)
    peak_gpu_memory_bytes: int = 0  # a GPU child's, by the driver (trainer.gpumemory); 0: a CPU child, or unknown

    @property
    def genome_seconds(self) -> float | None:
        """train.py's time (its set-up, training and export) on the child's clock; None if it never ran."""
        if self.genome_started is None:
            return None
        if self.threads is None:
            return self.ended - self.genome_started
        return (self.genome_cpu or 0.0) / self.threads

    def overrun(self, allowed: float) -> str:
        """How far train.py went past `allowed` seconds from its start, however the genome set its own clock,
        or "". A GPU child is measured in wall time; a CPU child in CPU time over its threads, which load on
        the machine does not inflate and which a genome that starts more threads does."""
        ran = self.genome_seconds
        if ran is None or ran <= allowed:
            return ""
        if self.threads is None:
            return f"train.py ran {ran:.1f} s by the trainer's clock, allowed {allowed:.0f} s"
        cap = allowed * self.threads
        return (
            f"train.py used {self.genome_cpu:.1f} CPU-seconds by the trainer's count, allowed {cap:.0f} "
            f"({self.threads} threads)"
        )


@dataclass(frozen=True)
class Spawned:
    """A child process started and held at its go line: its stdin carries one line, then closes."""

    proc: subprocess.Popen
    mark: int  # read end of the mark pipe
    curve: int  # read end of the curve pipe
    limits: sandbox.Limits
    cgroup: cgroups.Cgroup | None  # None: CGROUPS OFF

    def alive(self) -> bool:
        return self.proc.poll() is None


def spawn(
    command: list[str], *, cwd: Path, env: dict, limits: sandbox.Limits, cgroup: cgroups.Cgroup | None = None
) -> Spawned:
    """Start `command` (which gets the mark pipe's write end as $EVOLVE_MARK_FD) in `cgroup`; it may prepare,
    but must wait for a line on stdin before it does anything on the genome's behalf (see `finish`)."""
    mark_read, mark_write = os.pipe()
    curve_read, curve_write = os.pipe()
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env={**env, MARK_ENV: str(mark_write), CURVE_ENV: str(curve_write)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.PIPE,
        start_new_session=True,
        pass_fds=(mark_write, curve_write),
        preexec_fn=lambda: _prepare(limits, cgroup),
    )
    os.close(mark_write)
    os.close(curve_write)
    return Spawned(proc, mark_read, curve_read, limits, cgroup)


def _prepare(limits: sandbox.Limits, cgroup: cgroups.Cgroup | None) -> None:
    """preexec_fn: in the forked child, before it execs."""
    sandbox.set_limits(limits)
    if cgroup is not None:
        cgroup.enter()


def finish(
    child: Spawned, *, log_path: Path, deadline_s: float, threads: int | None, prune: watching.Prune | None = None
) -> Exit:
    """Let a spawned child go and reap it and all it started. Its clock (`started`, the deadline) starts
    here, at the go line, however long ago it was spawned: on the wall clock, or with `threads` on its CPU
    time over those threads (see the module's docstring). `prune` is asked after each point of its loss
    curve; a reason back stops the child there (Exit.pruned)."""
    started = time.perf_counter()
    proc = child.proc
    try:
        proc.stdin.write(b"go\n")
        proc.stdin.close()
    except BrokenPipeError:  # it died while it waited: what it printed says why
        pass
    log, watch = watching.CappedLog(log_path), watching.Watch(child.cgroup, threads, started, prune)
    watch.cpu_at_go = watch.cpu_seen = watch.cpu_now(proc.pid)
    try:
        watching.watch(proc, (child.mark, child.curve), log, child.limits, deadline_s, watch)
        ended = time.perf_counter()
    finally:
        _kill_group(proc)
        watching.drain(proc.stdout.fileno(), log)
        proc.stdout.close()
        log.close()
        watch.last_look()
        if child.cgroup is not None:
            child.cgroup.remove()
    return Exit(
        code=None if watch.killed else proc.returncode,
        started=started,
        ended=ended,
        genome_started=watch.genome_started,
        genome_cpu=watch.genome_cpu(),
        log_dropped=log.dropped,
        killed=watch.killed,
        seconds=watch.elapsed(ended),
        peak_memory_bytes=watch.peak_memory,
        threads=threads,
        curve=watch.curve.curve(),
        pruned=watch.pruned,
        peak_gpu_memory_bytes=watch.peak_gpu_memory,
    )


def discard(child: Spawned) -> None:
    """A spawned child that will not be used: killed with all it started, its pipes closed."""
    _kill_group(child.proc)
    if child.cgroup is not None:
        child.cgroup.remove()
    for stream in (child.proc.stdin, child.proc.stdout):
        try:
            stream.close()
        except BrokenPipeError:
            pass
    os.close(child.mark)
    os.close(child.curve)


def _kill_group(proc: subprocess.Popen) -> None:
    """Whatever the child started (forks included) goes with it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
