"""Faults a long run meets: the disk filling up while the archive is written, a damaged run directory."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import REPO

from fitness.result import RunResult
from population import Population, PopulationConfig, RunDirError
from population.segments import SegmentLog
from trainer import sandbox

WHEN = dict(started="2025-01-01T00:00:00+00:00", finished="2025-01-01T00:05:00+00:00")
QUOTA = 4 * 2**20  # the run directory's whole disk

# Runs inside a bubblewrap sandbox whose /quota is a QUOTA-sized tmpfs: fills it, records until the disk is
# full, checks what survives a reopen, frees the space and records again. Prints one JSON line.
FILL_AND_RECORD = textwrap.dedent(
    """
    import json, os, sys
    from fitness.result import RunResult
    from population import Population, PopulationConfig

    seed, run, config = open(sys.argv[1]).read(), "/quota/run", PopulationConfig(population_size=4)
    pop = Population.open(run, seed, config)
    free = os.statvfs("/quota").f_bavail * os.statvfs("/quota").f_frsize
    with open("/quota/filler", "wb") as f:
        f.write(b"x" * (free - 200_000))  # leave room for a few dozen evaluations
    acked, failures = [], []
    for i in range(5000):
        try:
            child, _ = pop.add(seed + f"# child {i}\\n", [pop.seed().id], "mutate", f"child {i}", i // 4)
            result = RunResult("ok", val_bpb=1.0 - i / 1e4, log_tail="step 1 | loss 3.2\\n" * 50)  # each a new best
            pop.record(child.id, result, generation=i // 4, started="s", finished="f")
            acked.append(child.id)
        except OSError as e:
            failures.append(f"{type(e).__name__}: {e.strerror}")
            if len(failures) == 3:
                break
    in_memory = pop.summary().evaluations
    pop.close()
    with Population.open(run, None, config) as again:
        on_disk = list(again.archive().genome_id)
    os.unlink("/quota/filler")
    with Population.open(run, None, config) as again:
        child, _ = again.add(seed + "# after\\n", [again.seed().id], "mutate", "after", 99)
        again.record(child.id, RunResult("ok", val_bpb=0.5), generation=99, started="s", finished="f")
        after = len(again.archive())
    print(json.dumps(dict(acked=acked, failures=failures, in_memory=in_memory, on_disk=on_disk, after=after)))
    """
)


def test_disk_full_while_recording_keeps_every_acknowledged_row_and_recovers(tmp_path, seed_source):
    seed_file = tmp_path / "seed.py"
    seed_file.write_text(seed_source)
    bwrap = sandbox.bwrap_path()
    assert bwrap, "this test fills a size-limited tmpfs made by bubblewrap (tests/run.sh installs it)"
    command = [bwrap, "--dev-bind", "/", "/", "--perms", "1777", "--size", str(QUOTA), "--tmpfs", "/quota"]
    command += [sys.executable, "-c", FILL_AND_RECORD, str(seed_file)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report["failures"] and all("No space left on device" in f for f in report["failures"])
    assert len(report["acked"]) > 5
    assert report["on_disk"] == report["acked"]  # every acknowledged row, in order, and nothing half-written
    assert report["in_memory"] == len(report["acked"])  # the writer's own view never ran ahead of the disk
    assert report["after"] == len(report["acked"]) + 1  # once there is space again, recording resumes


# --- a damaged run directory ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory, seed_source) -> Path:
    """A run with 40 evaluations (compacted and loose segments), built once and copied per test."""
    run_dir = tmp_path_factory.mktemp("faults") / "run"
    with Population.open(run_dir, seed_source, PopulationConfig(population_size=4)) as pop:
        for i in range(40):
            child, _ = pop.add(seed_source + f"# {i}\n", [pop.seed().id], "mutate", f"child {i}", i // 4)
            pop.record(child.id, RunResult("ok", val_bpb=1.0 + i / 100), generation=i // 4, **WHEN)
    return run_dir


def _segment(run_dir: Path, loose: bool) -> Path:
    """The compacted segment (rows 0-31), or the last loose one."""
    segments = sorted((run_dir / "archive").glob("seg-*.parquet"))
    return segments[-1] if loose else segments[0]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _genome_object(run_dir: Path) -> Path:
    """The loose object of one genome's commit (what `refs/genomes/<id>` points at)."""
    ref = next((run_dir / ".git" / "refs" / "genomes").iterdir()).name
    return run_dir / ".git" / "objects" / ref[:2] / ref[2:]


DAMAGE = {
    "truncated segment": (lambda run: _segment(run, loose=False), _truncate, "archive segment"),
    "garbage segment": (
        lambda run: _segment(run, loose=True),
        lambda p: p.write_bytes(os.urandom(4096)),
        "archive segment",
    ),
    "missing population.json": (lambda run: run / "population.json", Path.unlink, "population.json"),
    "damaged population.json": (lambda run: run / "population.json", lambda p: p.write_text('{"seed": '), "damaged"),
    "missing commit object": (_genome_object, Path.unlink, "genome repository"),
    "garbage HEAD": (lambda run: run / ".git" / "HEAD", lambda p: p.write_text("garbage\n"), "genome repository"),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damaged_run_directory_is_one_clear_error_and_nothing_is_lost(damage, recorded_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(recorded_run, run_dir)
    locate, harm, what = DAMAGE[damage]
    victim = locate(run_dir)
    original = victim.read_bytes()
    victim.chmod(0o644)
    harm(victim)
    before = _fingerprint(run_dir)
    with pytest.raises(RunDirError) as error:
        Population.open(run_dir, None, PopulationConfig(population_size=4))
    message = str(error.value)
    assert "\n" not in message and what in message and str(run_dir) in message, message
    assert _fingerprint(run_dir) == before  # the failed open changed and deleted nothing
    victim.write_bytes(original)  # put the one damaged file back: every evaluation is still there
    with Population.open(run_dir, None, PopulationConfig(population_size=4)) as pop:
        assert list(pop.archive().val_bpb) == pytest.approx([1.0 + i / 100 for i in range(40)])


def _fingerprint(run_dir: Path) -> dict[str, str]:
    files = (p for p in run_dir.rglob("*") if p.is_file() and p.name != "population.lock")
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


# Appends rows too big to compact under a 64 KiB file-size limit (each alone fits): prints one JSON line.
APPEND_UNDER_FSIZE = textwrap.dedent(
    """
    import json, os, resource, sys
    from pathlib import Path
    import pyarrow as pa
    from population.segments import SegmentLog

    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
    log = SegmentLog(Path(sys.argv[1]), pa.schema([("i", pa.int64()), ("blob", pa.binary())]), fanout=4)
    acked, failures = [], []
    for i in range(10):
        try:
            log.append([{"i": i, "blob": os.urandom(20_000)}])  # 4 of them are more than 64 KiB
            acked.append(i)
        except OSError as e:
            failures.append(e.strerror)
    print(json.dumps(dict(acked=acked, failures=failures, length=len(log))))
    """
)


def test_a_compaction_the_disk_refuses_is_postponed_and_no_row_is_in_doubt(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", APPEND_UNDER_FSIZE, str(tmp_path / "log")], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report == {"acked": list(range(10)), "failures": [], "length": 10}
    assert "compaction of rows 0-3 postponed: [Errno 27] File too large" in proc.stderr
    assert not [p for p in (tmp_path / "log").iterdir() if p.name.startswith(".tmp-")]  # no half-written file
    reopened = SegmentLog(tmp_path / "log", pa.schema([("i", pa.int64()), ("blob", pa.binary())]), fanout=4)
    assert reopened.read().column("i").to_pylist() == list(range(10))


def test_a_stop_signal_during_the_loop_is_a_request_it_cannot_lose_and_a_second_one_interrupts_at_once():
    """Ctrl-C or SIGTERM while the driver loop runs only sets a flag the loop checks after each turn (a
    KeyboardInterrupt raised wherever the main thread is can be dropped there, e.g. inside a finalizer)."""
    import signal

    from evolve.orchestrator import StopSignals

    before = {sig: signal.getsignal(sig) for sig in StopSignals.SIGNALS}

    class Dropping:  # what a finalizer does with an exception: prints it and goes on
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs at one of these bytecodes, inside __del__
                pass

    with StopSignals() as stop:
        Dropping()  # collected at once, the signal handled inside its __del__
        assert stop.received == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            stop.check()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)  # the second stop signal: at once
            for _ in range(1000):
                pass
    assert {sig: signal.getsignal(sig) for sig in StopSignals.SIGNALS} == before
    with StopSignals() as stop:
        stop.check()  # nothing received: the loop goes on
