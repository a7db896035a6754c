"""Population.read: a read-only view of a run that another process may still be writing."""

from __future__ import annotations

import os
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fitness.result import RunResult
from population import Population, PopulationConfig, RunDirError
from population.rundir import lock
from population.segments import SegmentLog

SCHEMA = pa.schema([("n", pa.int64())])
STAMP = dict(started="2025-01-01T00:00:00", finished="2025-01-01T00:00:01")


def _ok(val_bpb: float) -> RunResult:
    return RunResult(status="ok", val_bpb=val_bpb, profile="smoke", budget_seconds=2.0)


def _files(path) -> dict[str, float]:
    return {str(p.relative_to(path)): p.stat().st_mtime_ns for p in path.rglob("*")}


def test_reader_sees_a_live_run_without_taking_its_lock(tmp_path, seed_source):
    with Population.open(tmp_path / "run", seed_source, PopulationConfig(population_size=2)) as writer:
        writer.record(writer.seed().id, _ok(3.0), kind="noise", generation=0, **STAMP)
        child, _ = writer.add(seed_source + "\n# child\n", [writer.seed().id], "mutate", "a comment", 1)
        with Population.read(tmp_path / "run") as reader:
            assert len(reader.archive()) == 1 and reader.genome(child.id[:10]) == child
            assert reader.fitness(reader.seed().id).mean == 3.0
        writer.record(child.id, _ok(2.5), generation=1, **STAMP)
        with Population.read(tmp_path / "run") as later:
            assert list(later.archive().val_bpb) == [3.0, 2.5]
            assert later.best().id == writer.best().id


def test_reader_refuses_to_record_or_add(tmp_path, seed_source):
    Population.open(tmp_path / "run", seed_source, PopulationConfig()).close()
    with Population.read(tmp_path / "run") as reader:
        with pytest.raises(RunDirError, match="read-only"):
            reader.record(reader.seed().id, _ok(3.0), generation=0, **STAMP)
        with pytest.raises(RunDirError, match="read-only"):
            reader.add(seed_source + "\n# x\n", [reader.seed().id], "mutate", "x", 1)


def test_reader_leaves_leftovers_of_a_writer_mid_write_or_mid_compaction_alone(tmp_path, seed_source):
    run = tmp_path / "run"
    with Population.open(run, seed_source, PopulationConfig()) as writer:
        for value in (3.0, 3.1):
            writer.record(writer.seed().id, _ok(value), kind="noise", generation=0, **STAMP)
    archive = run / "archive"
    small = sorted(archive.glob("seg-*.parquet"))
    pq.write_table(pa.concat_tables(pq.read_table(p) for p in small), archive / "seg-0000000000-0000000001.parquet")
    (archive / ".tmp-seg-0000000002-0000000002.parquet").write_bytes(b"half written")
    before = _files(run)
    with Population.read(run) as reader:
        assert list(reader.archive().val_bpb) == [3.0, 3.1]
    assert _files(run) == before


def test_reader_of_a_directory_that_is_not_a_run_fails_without_creating_it(tmp_path):
    with pytest.raises(RunDirError, match="not a run directory"):
        Population.read(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_reader_of_a_run_caught_mid_creation_is_told_to_try_again(tmp_path):
    """Its creator holds the lock and has made archive/ and .git, but not yet written population.json."""
    run_dir = tmp_path / "run"
    (run_dir / "archive").mkdir(parents=True)
    fd = lock(run_dir)
    try:
        with pytest.raises(RunDirError, match="is a run still being created; try again in a moment"):
            Population.read(run_dir)
    finally:
        os.close(fd)
    with pytest.raises(RunDirError, match="is not an evolve run"):  # nobody holds it: a directory left over
        Population.read(run_dir)


def test_reader_reads_a_consistent_prefix_while_the_writer_compacts(tmp_path):
    """fanout 2 compacts on every other append, so listings and reads race real compactions."""
    writer = SegmentLog(tmp_path, SCHEMA, fanout=2)
    done = threading.Event()

    def write() -> None:
        for n in range(400):
            writer.append([{"n": n}])
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    reads = 0
    try:
        while not done.is_set():
            rows = SegmentLog(tmp_path, SCHEMA, fanout=2, read_only=True).read().column("n").to_pylist()
            assert rows == list(range(len(rows)))
            reads += 1
    finally:
        thread.join()
    assert reads > 5
    final = SegmentLog(tmp_path, SCHEMA, fanout=2, read_only=True).read()
    assert final.column("n").to_pylist() == list(range(400))
