"""The archive: atomic Parquet segments, kill -9 safety, evaluation rows, results.tsv export."""

from __future__ import annotations

import dataclasses
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pytest

from fitness.result import RunResult
from population import LLMSpend, Population, PopulationConfig, RunDirError
from population.archive import SCHEMA
from population.archive import curve as archive_curve
from population.export import best_history, results_tsv
from population.segments import SegmentLog

REPO = Path(__file__).resolve().parents[1]
WHEN = dict(started="2025-01-01T00:00:00+00:00", finished="2025-01-01T00:05:00+00:00")
SMALL = pa.schema([("i", pa.int64())])


def test_segments_compact_and_read_back_every_row_once(tmp_path):
    log = SegmentLog(tmp_path, SMALL, fanout=4)
    for i in range(37):
        log.append([{"i": i}])
    assert len(list(tmp_path.iterdir())) < 10
    assert SegmentLog(tmp_path, SMALL, fanout=4).read().column("i").to_pylist() == list(range(37))


def test_leftovers_of_an_interrupted_compaction_are_dropped_on_open(tmp_path):
    log = SegmentLog(tmp_path / "a", SMALL, fanout=4)
    for i in range(3):
        log.append([{"i": i}])
    saved = tmp_path / "saved"
    shutil.copytree(tmp_path / "a", saved)
    log.append([{"i": 3}])  # compacts rows 0..3 into one segment and deletes the small ones
    for small in saved.iterdir():  # as if the crash came before the deletes
        shutil.copy(small, tmp_path / "a" / small.name)
    (tmp_path / "a" / ".tmp-seg-0000000004-0000000004.parquet").write_bytes(b"half a file")
    reopened = SegmentLog(tmp_path / "a", SMALL, fanout=4)
    assert reopened.read().column("i").to_pylist() == [0, 1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["seg-0000000000-0000000003.parquet"]


def test_a_missing_segment_is_reported_not_skipped(tmp_path):
    log = SegmentLog(tmp_path, SMALL, fanout=8)
    for i in range(3):
        log.append([{"i": i}])
    (tmp_path / "seg-0000000001-0000000001.parquet").unlink()
    with pytest.raises(RunDirError, match="lost rows"):
        SegmentLog(tmp_path, SMALL, fanout=8)


WRITER = textwrap.dedent(
    """
    import sys
    from fitness.result import RunResult
    from population import Population, PopulationConfig
    seed = open(sys.argv[2]).read()
    with Population.open(sys.argv[1], seed, PopulationConfig(population_size=4)) as pop:
        parent = pop.seed().id
        for i in range(100_000):
            child, _ = pop.add(seed + f"# child {i}\\n", [parent], "mutate", f"child {i}", i // 4)
            pop.record(child.id, RunResult("ok", val_bpb=1.0 + i / 1e4), generation=i // 4, started="s", finished="f")
            print(child.id, i, flush=True)
    """
)


@pytest.mark.parametrize("acks", [7, 29, 41])
def test_kill_9_while_appending_loses_nothing_acknowledged(tmp_path, seed_source, acks):
    run_dir, seed_file = tmp_path / "run", tmp_path / "seed.py"
    seed_file.write_text(seed_source)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-c", WRITER, str(run_dir), str(seed_file)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
    acked = [proc.stdout.readline().split() for _ in range(acks)]
    time.sleep(random.Random(acks).uniform(0, 0.02))  # land the kill anywhere in add, record or compaction
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Population.open(run_dir, None, PopulationConfig(population_size=4)) as pop:
        frame = pop.archive()
        recorded = dict(zip(frame.genome_id, frame.val_bpb, strict=True))
        for gid, i in acked:
            assert recorded[gid] == pytest.approx(1.0 + int(i) / 1e4)
            assert pop.genome(gid).description == f"child {i}"
        assert list(frame.eval_id) == list(range(len(frame))) and len(frame) >= acks


def test_record_stores_one_row_with_every_field(tmp_path, seed_source):
    result = RunResult("ok", val_bpb=0.9876, test_bpb=0.99, peak_memory_mb=3000.0, device="NVIDIA H100", seed=3)
    llm = LLMSpend("claude", input_tokens=1200, output_tokens=300, cost_usd=0.02)
    with Population.open(tmp_path / "run", seed_source, PopulationConfig()) as pop:
        child, _ = pop.add(seed_source + "# x\n", [pop.seed().id], "mutate", "x", 1)
        pop.record(child.id, result, generation=1, node="n1", worker="w3", llm=llm, **WHEN)
        pop.record(child.id, RunResult("crash", reason="boom"), kind="repeat", generation=2, **WHEN)
        frame = pop.archive()
    assert list(frame.columns) == SCHEMA.names and len(frame) == 2
    row = frame.iloc[0]
    assert (row.genome_id, row.parents, row.operator, row.kind) == (child.id, pop.seed().id, "mutate", "child")
    assert (row.node, row.worker, row.llm_model, row.llm_output_tokens) == ("n1", "w3", "claude", 300)
    assert (row.val_bpb, row.device, row.started) == (0.9876, "NVIDIA H100", WHEN["started"])
    assert list(frame.status) == ["ok", "crash"] and frame.reason.iloc[1] == "boom"


def test_record_refuses_an_unknown_kind(tmp_path, seed_source):
    with Population.open(tmp_path / "run", seed_source, PopulationConfig()) as pop:
        with pytest.raises(ValueError, match="'rerun'"):
            pop.record(pop.seed().id, RunResult("ok", val_bpb=1.0), kind="rerun", generation=0, **WHEN)
        assert len(pop.archive()) == 0


def test_results_tsv_keeps_what_became_the_confirmed_best_and_discards_what_did_not(tmp_path, seed_source):
    config = PopulationConfig(confirm_repeats=2, paired=False)  # the noise gate decides keep and discard
    with Population.open(tmp_path / "run", seed_source, config) as pop:
        seed = pop.seed().id
        pop.record(seed, RunResult("ok", val_bpb=1.0, peak_memory_mb=45060.2), kind="noise", generation=0, **WHEN)
        pop.record(seed, RunResult("ok", val_bpb=0.98), kind="noise", generation=0, **WHEN)  # mean 0.99, sigma 0.014
        outcomes = [RunResult("ok", val_bpb=0.985), RunResult("timeout"), RunResult("ok", val_bpb=0.9), RunResult("ok")]
        children = []
        for i, result in enumerate(outcomes):
            child, _ = pop.add(seed_source + f"# {i}\n", [seed], "mutate", f"try\t{i}", 1)
            children.append(child)
            status = "interrupted" if i == 3 else result.status
            pop.record(child.id, dataclasses.replace(result, status=status), generation=1, **WHEN)
        pop.record(children[2].id, RunResult("ok", val_bpb=0.92), kind="repeat", generation=1, **WHEN)
        assert pop.best().id == children[2].id
        lines = pop.export_results_tsv(tmp_path / "results.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["commit", "val_bpb", "memory_gb", "status", "description"]
    assert lines[1] == f"{seed[:7]}\t0.990000\t44.0\tkeep\tseed genome"
    assert (
        [line.split("\t")[:4] for line in lines[2:]]
        == [
            [children[0].id[:7], "0.985000", "0.0", "discard"],  # better than the seed's mean, inside the noise
            [children[1].id[:7], "0.000000", "0.0", "crash"],
            [children[2].id[:7], "0.910000", "0.0", "keep"],  # clear of the noise band: the best
        ]
    )  # the interrupted child is no result
    assert lines[2].split("\t")[4] == "try 0"


_COUNT_THREADS = """
import os, sys
from pathlib import Path
import pyarrow as pa
from population.segments import SegmentLog
from population.errors import RunDirError
threads = lambda: len(os.listdir("/proc/self/task"))
before = threads()
log = SegmentLog(Path(sys.argv[1]), pa.schema([("i", pa.int64())]), fanout=4)
log.read().to_pandas(use_threads=False)
try:
    SegmentLog(Path(sys.argv[2]), pa.schema([("i", pa.int64())]), fanout=4).read()
except RunDirError:
    pass
print(threads() - before)
"""


def test_reading_segments_good_or_corrupt_starts_no_arrow_thread_pool(tmp_path):
    # A pool thread still busy with a failed read when the interpreter exits aborts it (SIGABRT), so an error
    # exit of `evolve replay` became a crash; reading must not start one. A fresh process: this one may hold
    # pools other tests started.
    good, bad = tmp_path / "good", tmp_path / "bad"
    for directory in (good, bad):
        log = SegmentLog(directory, SMALL, fanout=4)
        for i in range(6):
            log.append([{"i": i}])
    sorted(bad.glob("seg-*"))[-1].write_bytes(b"PAR1 this is not parquet PAR1")
    proc = subprocess.run([sys.executable, "-c", _COUNT_THREADS, str(good), str(bad)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0", f"reading started {proc.stdout.strip()} threads"


def test_best_history_is_the_best_population_had_after_every_evaluation(tmp_path, seed_source):
    """The one definition of best: replayed from the archive, it is what Population.best() said live."""
    config = PopulationConfig(confirm_repeats=2)
    rng = random.Random(7)
    live = []
    with Population.open(tmp_path / "run", seed_source, config) as pop:
        genomes = [pop.seed()]
        for i in range(40):
            if rng.random() < 0.4:
                genome = rng.choice(genomes)
            else:
                genome, _ = pop.add(seed_source + f"# {i}\n", [rng.choice(genomes).id], "mutate", str(i), 1)
                genomes.append(genome)
            result = RunResult("ok", val_bpb=rng.gauss(1.0, 0.05)) if rng.random() < 0.8 else RunResult("crash")
            pop.record(genome.id, result, generation=1, **WHEN)
            best = pop.best()
            live.append((best.id, pop.fitness(best.id).mean) if best else (None, math.nan))
        history = best_history(pop.archive(), pop.seed().id, config)
    assert [(step.best_id, step.val_bpb) for step in history] == live
    assert len({best for best, _ in live}) > 2  # the best changed hands along the way


def test_the_archive_directory_reads_with_plain_pandas_as_the_readme_shows(tmp_path, seed_source):
    import pandas as pd

    with Population.open(tmp_path / "run", seed_source, PopulationConfig()) as pop:
        for i in range(5):
            pop.record(pop.seed().id, RunResult("ok", val_bpb=1.0 + i / 100), kind="noise", generation=0, **WHEN)
        expected = pop.archive()
    evals = pd.read_parquet(tmp_path / "run" / "archive").drop_duplicates("eval_id").sort_values("eval_id")
    pd.testing.assert_frame_equal(evals.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False)


def test_loss_curve_is_archived_with_its_row_and_survives_reopening(tmp_path, seed_source):
    curve = ((0.1, 5.5), (0.5, 4.25), (1.0, 3.75))
    with Population.open(tmp_path / "run", seed_source, PopulationConfig()) as pop:
        pop.record(pop.seed().id, RunResult("ok", val_bpb=1.0, loss_curve=curve), kind="noise", generation=0, **WHEN)
        pop.record(pop.seed().id, RunResult("crash", reason="boom"), kind="noise", generation=0, **WHEN)
    with Population.open(tmp_path / "run", seed_source, PopulationConfig()) as pop:
        rows = pop.archive().to_dict("records")
    assert archive_curve(rows[0]) == tuple((pytest.approx(p), pytest.approx(v)) for p, v in curve)
    assert archive_curve(rows[1]) == ()


def test_rows_of_segments_written_before_curves_read_with_no_curve(tmp_path):
    old = pa.schema([f for f in SCHEMA if not f.name.startswith("curve_")])
    SegmentLog(tmp_path, old).append([{"eval_id": 0, "genome_id": "g", "status": "ok"}])
    (row,) = SegmentLog(tmp_path, SCHEMA).read().to_pylist()
    assert archive_curve(row) == ()


def test_results_tsv_discards_a_pruned_child_rather_than_calling_it_a_crash(tmp_path, seed_source):
    with Population.open(tmp_path / "run", seed_source, PopulationConfig()) as pop:
        child, _ = pop.add(seed_source + "# x\n", [pop.seed().id], "hyperparam", "x", 1)
        pop.record(child.id, RunResult("pruned", reason="trails"), generation=1, **WHEN)
        tsv = results_tsv(pop.archive(), pop.seed().id, pop.config)
    assert f"{child.id[:7]}\t0.000000\t0.0\tdiscard\tx" in tsv.splitlines()
