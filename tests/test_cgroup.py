"""A cgroup per training child (trainer.cgroup): what the kernel counts that the /proc tree cannot."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from trainer import cgroup

FORKS_THE_KERNEL_REAPS = """
import os, signal, time
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
for _ in range(4):
    if os.fork() == 0:
        until = time.process_time() + 0.3
        while time.process_time() < until:
            pass
        os._exit(0)
time.sleep(2)
"""

ESCAPES_ITS_SESSION = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        print(os.getpid(), flush=True)
        time.sleep(600)
    os._exit(0)
time.sleep(600)
"""


@pytest.fixture
def group():
    made = cgroup.create(64)
    assert made is not None, "no cgroup could be made here (CGROUPS OFF)"
    yield made
    made.remove()


def test_cpu_of_forks_the_kernel_reaps_is_counted(group):
    proc = subprocess.Popen([sys.executable, "-c", FORKS_THE_KERNEL_REAPS], preexec_fn=group.enter)
    assert proc.wait() == 0
    usage = group.usage()
    assert usage.cpu_seconds >= 4 * 0.3  # none of it reached the parent's cutime
    assert usage.peak_memory_bytes > 0 and usage.tasks == 0


def test_removing_it_kills_a_process_that_left_the_childs_session(group):
    proc = subprocess.Popen(
        [sys.executable, "-c", ESCAPES_ITS_SESSION], preexec_fn=group.enter, stdout=subprocess.PIPE, text=True
    )
    escaped = int(proc.stdout.readline())
    proc.kill()
    proc.wait()
    assert os.path.exists(f"/proc/{escaped}")  # the child is gone, its grandchild lives on outside its session
    group.remove()
    deadline = time.monotonic() + 10
    while _alive(escaped) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(escaped)
    assert not any(d.exists() for d in group.dirs)


def test_cores_available_are_at_most_those_this_process_may_run_on():
    assert 1 <= cgroup.available_cores() <= len(os.sched_getaffinity(0))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


HOLDS_MEMORY = """
import sys, time
held = bytearray(300 * 2**20)  # written: resident
sys.stdin.readline()
time.sleep(1.5)
"""


@pytest.mark.parametrize("memory_counted", [True, False], ids=["by the kernel", "by the watchdog"])
def test_a_childs_peak_memory_is_measured_whether_or_not_its_cgroup_counts_memory(group, tmp_path, memory_counted):
    """A cgroup v2 whose parent does not hand down the memory controller has no memory.peak (a GPU machine
    here recorded 0 MB): the watchdog's /proc sums stand in."""
    import dataclasses

    from trainer import sandbox, supervise

    used = group if memory_counted else dataclasses.replace(group, memory_file=None)
    limits = sandbox.Limits.for_child(disk_mb=64, memory_mb=2048, gpu=False, hard_limit_s=60)
    child = supervise.spawn(
        [sys.executable, "-c", HOLDS_MEMORY], cwd=tmp_path, env=dict(os.environ), limits=limits, cgroup=used
    )
    ran = supervise.finish(child, log_path=tmp_path / "log", deadline_s=30, threads=1)
    assert ran.code == 0, (tmp_path / "log").read_text()
    assert 300 * 2**20 <= ran.peak_memory_bytes < 2 * 2**30
    assert ran.peak_gpu_memory_bytes == 0  # a CPU child
