"""Per-child kernel accounting: one cgroup for each training child, made by the trainer, the child placed in
it before it execs (so everything it ever starts is in it too), emptied and removed after.

The kernel counts for it what the /proc tree cannot: CPU time of processes reaped by nobody (SIGCHLD
ignored: it never reaches a parent's cutime), processes that left the tree (setsid, reparented to init),
the peak memory between two of the watchdog's looks. cgroup v1 (cpuacct, memory, pids, cpu hierarchies,
each used where mounted) or v2 (one hierarchy; cpu.stat is always there, memory and pids where the
trainer's own cgroup can hand those controllers down). Each child's cgroup is made under the trainer's own
in every hierarchy, so whatever limits the trainer runs under still hold for its children. Its `pids.max`
caps the child's processes and threads, root or not; its CPU weight is raised so that a child keeps its
cores against ordinary neighbours (a child's budget is its CPU time, which load would otherwise stretch).

Where no cgroup can be made (no cgroup filesystem, not writable, not root) the trainer says so once
(CGROUPS OFF) and counts from the /proc tree as before (trainer.supervise), which misses the above.
"""

from __future__ import annotations

import errno
import functools
import logging
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from fitness import cpuclock

logger = logging.getLogger(__name__)
PREFIX = "evolve-child-"  # then the trainer's pid and a counter
CPU_WEIGHT_V1 = 8192  # cpu.shares: 8 ordinary (nice 0) processes' worth (default 1024)
CPU_WEIGHT_V2 = 800  # cpu.weight, the same on v2's scale (default 100)
EMPTY_WAIT_S = 15.0  # how long `remove` waits for the killed processes to leave (a GPU one takes seconds)


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float  # every process that ever ran in it, reaped by whomever
    peak_memory_bytes: int  # the kernel's high-water mark of its memory (page cache it touched included); 0: unknown
    tasks: int  # processes and threads in it now; -1: unknown


@dataclass(frozen=True)
class Cgroup:
    """One child's cgroup: a directory in each hierarchy used (v1: one per controller mount; v2: one)."""

    dirs: tuple[Path, ...]
    cpu_file: Path  # cpuacct.usage (nanoseconds) or cpu.stat (usage_usec)
    memory_file: Path | None  # memory.max_usage_in_bytes or memory.peak
    tasks_file: Path | None  # pids.current

    def enter(self) -> None:
        """preexec_fn: move the calling (forked, not yet exec'd) process into every directory."""
        for d in self.dirs:
            fd = os.open(d / "cgroup.procs", os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)

    def usage(self) -> Usage:
        memory = _read_int(self.memory_file) if self.memory_file else 0
        tasks = _read_int(self.tasks_file) if self.tasks_file else -1
        return Usage(cpuclock.cgroup_seconds(self.cpu_file), memory, tasks)

    def remove(self) -> None:
        """Kill whatever is still in it (a process that left the child's session or namespace too), then
        remove it. One that will not empty is left behind with a warning; the next trainer sweeps it."""
        deadline = time.monotonic() + EMPTY_WAIT_S
        while _kill_all(self.dirs) and time.monotonic() < deadline:
            time.sleep(0.02)
        for d in reversed(self.dirs):
            while True:
                try:
                    d.rmdir()
                except FileNotFoundError:
                    pass
                except OSError as e:
                    # EBUSY while a killed process is still being torn down after it left cgroup.procs (a GPU
                    # process freeing its card's memory takes seconds): wait for it, up to the same deadline
                    if e.errno == errno.EBUSY and time.monotonic() < deadline:
                        time.sleep(0.05)
                        continue
                    logger.warning("could not remove the child's cgroup %s: %s", d, e)
                break


def create(max_tasks: int) -> Cgroup | None:
    """A new cgroup for one child (`pids.max` = max_tasks where the pids controller is there), or None
    (after one CGROUPS OFF warning per process) where none can be made."""
    plan = _plan()
    if plan is None:
        return None
    name = f"{PREFIX}{os.getpid()}-{next(_counter)}"
    made: list[Path] = []
    try:
        for parent in plan.parents:
            (parent / name).mkdir()
            made.append(parent / name)
        group = plan.group(name)
        _settle(group, plan, max_tasks)
    except OSError:
        Cgroup(tuple(made), Path(), None, None).remove()
        raise
    return group


def available_cores() -> int:
    """CPU cores this process may really use: its affinity, capped by its cgroup's CPU quota."""
    cores = len(os.sched_getaffinity(0))
    dirs = _own_dirs()
    quota = _quota_v1(dirs["cpu"]) if "cpu" in dirs else _quota_v2(dirs.get(""))
    return max(1, min(cores, math.ceil(quota))) if quota else cores


@dataclass(frozen=True)
class _Plan:
    parents: tuple[Path, ...]  # the trainer's own cgroup directories children are made under
    v1: dict[str, Path]  # controller -> parent (v1); empty on v2

    def group(self, name: str) -> Cgroup:
        dirs = tuple(p / name for p in self.parents)
        if self.v1:
            at = {c: p / name for c, p in self.v1.items()}
            memory = at["memory"] / "memory.max_usage_in_bytes" if "memory" in at else None
            tasks = at["pids"] / "pids.current" if "pids" in at else None
            return Cgroup(dirs, at["cpuacct"] / "cpuacct.usage", memory, tasks)
        d = dirs[0]
        memory = d / "memory.peak" if (d / "memory.peak").exists() else None
        tasks = d / "pids.current" if (d / "pids.current").exists() else None
        return Cgroup(dirs, d / "cpu.stat", memory, tasks)


def _settle(group: Cgroup, plan: _Plan, max_tasks: int) -> None:
    """The child's caps: its processes and threads, and its CPU weight against its neighbours."""
    if group.tasks_file is not None:
        group.tasks_file.with_name("pids.max").write_text(str(max_tasks))
    weight = plan.v1["cpu"] / group.dirs[0].name / "cpu.shares" if "cpu" in plan.v1 else None
    weight = weight or group.dirs[0] / "cpu.weight"
    if weight.exists():
        weight.write_text(str(CPU_WEIGHT_V1 if plan.v1 else CPU_WEIGHT_V2))


_counter = iter(range(1, 1 << 62))


@functools.cache
def _plan() -> _Plan | None:
    """Where this process's children's cgroups go, checked (by making and removing one) and swept of those
    dead trainers left, once per process; None, with the one warning, where none can be made."""
    dirs = _own_dirs()
    if "cpuacct" in dirs:
        v1 = {c: dirs[c] for c in ("cpuacct", "memory", "pids", "cpu") if c in dirs}
        plan = _Plan(tuple(dict.fromkeys(v1.values())), v1)
    elif "" in dirs:
        _delegate(dirs[""])
        plan = _Plan((dirs[""],), {})
    else:
        return _off("no cgroup filesystem with cpu accounting is mounted")
    try:
        for parent in plan.parents:
            probe = parent / f"{PREFIX}{os.getpid()}-0"
            probe.mkdir()
            probe.rmdir()
    except OSError as e:
        return _off(f"{type(e).__name__}: {e}")
    _sweep(plan.parents)
    return plan


def _off(why: str) -> None:
    logger.warning(
        "CGROUPS OFF: can't make a cgroup per child here (%s); a child's CPU time, memory and processes are "
        "counted from its /proc tree, which misses processes the kernel reaps on its own",
        why,
    )
    return None


def _delegate(parent: Path) -> None:
    """v2: hand the memory and pids controllers down to children's cgroups where the kernel lets us (it does
    not where the trainer's own cgroup holds processes and is not the root: then only CPU is counted)."""
    wanted = set((parent / "cgroup.controllers").read_text().split()) & {"memory", "pids", "cpu"}
    try:
        (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in sorted(wanted)))
    except OSError:
        pass


def _sweep(parents: tuple[Path, ...]) -> None:
    """Remove children's cgroups whose trainer is gone (a killed worker's, which no `finally` removed)."""
    for parent in parents:
        for d in parent.glob(f"{PREFIX}*-*"):
            pid = d.name[len(PREFIX) :].split("-", 1)[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                Cgroup((d,), Path(), None, None).remove()


def _kill_all(dirs: tuple[Path, ...]) -> bool:
    """SIGKILL every process in `dirs`; whether any was found."""
    found = False
    for d in dirs:
        if (d / "cgroup.kill").exists():
            (d / "cgroup.kill").write_text("1")
        try:
            pids = (d / "cgroup.procs").read_text().split()
        except FileNotFoundError:
            continue
        for pid in map(int, pids):
            found = True
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return found


def _own_dirs() -> dict[str, Path]:
    """Controller -> this process's cgroup directory in that controller's hierarchy ("": cgroup v2)."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        own.update({name: path for name in (names.split(",") if names else [""])})
    dirs: dict[str, Path] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        tail = fields[fields.index("-") + 1 :]
        names = [""] if tail[0] == "cgroup2" else tail[2].split(",") if tail[0] == "cgroup" else []
        for name in (n for n in names if n in own and n not in dirs):
            relative = os.path.relpath(own[name], fields[3])
            if not relative.startswith(".."):
                dirs[name] = Path(fields[4]) / relative
    return dirs


def _quota_v1(cpu: Path) -> float | None:
    quota, period = _read_int(cpu / "cpu.cfs_quota_us"), _read_int(cpu / "cpu.cfs_period_us")
    return quota / period if quota > 0 and period > 0 else None


def _quota_v2(d: Path | None) -> float | None:
    try:
        quota, period = (d / "cpu.max").read_text().split() if d else ("max", "")
    except OSError:
        return None
    return None if quota == "max" else int(quota) / int(period)


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
