"""Running `python -m evolve` in tests as a user runs it: the one subprocess helper (with a private Ray's
settings), a run in the background, the archive as a reader sees it, waiting on a run, cleaning up what a
killed run leaves, and bad input checked in-process (the same code path as the command, without start-up)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO

FAST = ["--profile", "smoke", "--budget", "1", "--noise-repeats", "2", "--cpus-per-child", "1"]
TIMEOUT = 900  # generous: a busy machine slows every child; a quiet 2-core one needs a fraction of it
# Statuses that would be our fault here; `over_budget` is not among them: a 1 s budget on a busy machine
# can end with one slow step past the tolerance, which the harness rightly reports.
TROUBLE = ["crash", "invalid", "timeout", "interrupted"]


def run_env(**extra: str) -> dict:
    """The caller's environment with a private Ray's settings, this checkout importable, and a wide terminal
    (tables are not cut); `extra` adds to it."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "COLUMNS": "160"}
    return {**env, "PYTHONPATH": str(REPO), **extra}


def evolve(*args: str, timeout: float = TIMEOUT, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m evolve ARGS` in a subprocess, as a user runs it (`env`: run_env() unless given)."""
    command = [sys.executable, "-m", "evolve", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env or run_env(), timeout=timeout)


def start_run(*args: str, log: Path) -> subprocess.Popen:
    """The run in the background, in its own process group (as a terminal would start it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "evolve", *args],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env=run_env(),
        start_new_session=True,
    )


def refused(args: list[str], message: str, capsys) -> str:
    """`python -m evolve ARGS` in-process: exit 2 and one line on stderr holding `message`; that line."""
    from evolve.cli import main

    assert main(args) == 2
    captured = capsys.readouterr()
    assert message in captured.err and len(captured.err.strip().splitlines()) == 1, captured.err
    assert "Traceback" not in captured.out + captured.err
    return captured.err


def archive(run_dir: Path):
    """The archive as a reader sees it while the run may still be writing."""
    from population import Population

    with Population(run_dir, read_only=True) as pop:
        return pop.archive()


def finished_children(frame) -> int:
    return int(((frame.kind == "child") & (frame.status != "interrupted")).sum())


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.5)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def reap(proc: subprocess.Popen) -> None:
    """Kill whatever is left of a run's process group (Ray helpers orphaned by a SIGKILLed driver)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def assert_clean(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stdout[-2000:] + result.stderr[-2000:]
