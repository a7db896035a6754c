"""`python -m evolve` as a user runs it: a real training in a subprocess, exit codes; bad input in-process
(the same code path as the command, without the start-up): one-line errors and exit code 2."""

from __future__ import annotations

import math

import pytest
from conftest import REPO, SEED_GENOME
from run_helpers import evolve, refused


@pytest.mark.slow
def test_train_smoke_prints_summary_with_finite_val_bpb_below_uniform():
    proc = evolve("train", str(SEED_GENOME), "--profile", "smoke", "--seed", "1", timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = dict(line.split(":", 1) for line in proc.stdout.splitlines() if ":" in line)
    val_bpb = float(summary["val_bpb"])
    assert math.isfinite(val_bpb)
    assert val_bpb < 0.85 * math.log2(512) / 2.3  # uniform over 512 tokens at ~2.3 bytes per token
    for key in ("training_seconds", "total_seconds", "peak_vram_mb", "num_steps", "num_params_M", "overhead_seconds"):
        assert key in summary
    assert summary["status"].strip() == "ok"
    assert proc.stdout.splitlines()[0] == "---"


@pytest.mark.parametrize(
    "args, quoted",
    [
        (["train", "no/such/train.py"], "'no/such/train.py'"),
        (["train", str(REPO / "trainer")], f"'{REPO / 'trainer'}'"),
        (["train", str(SEED_GENOME), "--budget", "0"], "'0'"),
        (["train", str(SEED_GENOME), "--budget", "soon"], "'soon'"),
        (["train", str(SEED_GENOME), "--budget", "-3"], "'-3'"),
        (["prepare", "--profile", "tpu"], "'tpu'"),
        (["train", str(SEED_GENOME), "--profile", "tpu"], "'tpu'"),
        (["prepare", "--vocab", "100"], "100"),
        (["frobnicate"], "'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, quoted, capsys):
    refused(args, quoted, capsys)


@pytest.mark.parametrize(
    "content, says",
    [
        (b"\xff\xfe not text", "is not UTF-8 text"),
        (b"import harness\ndef train(:\n", "is not valid Python: syntax error"),
    ],
    ids=["not-utf8", "not-python"],
)
def test_genome_that_is_not_utf8_or_not_python_is_one_line_and_exit_code_2(tmp_path, content, says, capsys):
    bad = tmp_path / "train.py"
    bad.write_bytes(content)
    line = refused(["train", str(bad), "--profile", "smoke"], says, capsys)
    assert line.startswith(f"evolve: error: genome {str(bad)!r} {says}")


def test_failed_child_exits_nonzero_with_reason(tmp_path):
    genome = tmp_path / "train.py"
    genome.write_text("import harness\nharness.batches(1)\n")
    proc = evolve("train", str(genome), "--profile", "smoke", timeout=300)
    assert proc.returncode == 1
    assert "invalid" in proc.stderr and "harness.submit" in proc.stderr
