"""The benchmarks in miniature, each as a user runs it (`python -m benchmarks.X`), so none rots.

Each checks that its result file is complete and agrees with itself (every figure recomputed from the
raw measurements it reports); none asserts how fast anything was.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO


def benchmark(module: str, *args: str) -> None:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args], capture_output=True, text=True, cwd=REPO, env=env
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_scheduler_benchmark_measures_gaps_utilisation_and_extrapolates(tmp_path):
    from benchmarks.scheduler import CHILD_SECONDS, TARGET

    benchmark("scheduler", "--gpus", "8", "--gaps", "8", "--saturated-children", "12", "--min-hold", "1",
              "--out", str(tmp_path))  # fmt: skip
    report = json.loads((tmp_path / "scheduler.json").read_text())
    assert (tmp_path / "scheduler.png").stat().st_size > 0
    assert report["machine"]["date"] and report["commit"] and report["settings"]["gpus"] == [8]
    [size] = report["sizes"]
    held, saturated = size["held"], size["saturated"]
    assert size["gpus"] == held["slots"] == 8
    assert held["hold_s"] >= 1.0 and held["children"] >= 2 * 8  # 1 + ceil(8 gaps / 8 slots) children per slot
    assert held["gaps"] == held["children"] - held["slots"]
    gap = held["idle_gap_s"]
    assert 0 <= gap["median"] <= gap["p95"] <= gap["max"] and 0 <= gap["mean"] <= gap["max"]
    assert 0 < held["utilisation"] <= 1
    assert saturated["children"] >= 12 and saturated["driver_cost_per_child_s"] > 0
    assert saturated["children_per_s"] == pytest.approx(1 / saturated["driver_cost_per_child_s"])
    cost = saturated["driver_cost_per_child_s"]
    expected = min(CHILD_SECONDS / (CHILD_SECONDS + gap["mean"]), CHILD_SECONDS / (8 * cost))
    assert size["utilisation_at_300s"] == pytest.approx(expected)
    assert size["utilisation_at_300s_basis"].startswith("extrapolated")
    assert size["meets_target"] == (size["utilisation_at_300s"] >= TARGET)
    assert 0 < size["startup_s"] < size["session_s"] <= report["wall_seconds"]
    assert size["worker_cores"] >= 0 and len(size["load_average"]) == 2
    assert 0 <= size["swap_used_mb"]["start"] <= size["swap_used_mb"]["peak"]
    assert report["machine"]["memory_mb"] > 0 and report["machine"]["swap_mb"] >= 0


def test_children_held_for_300_s_are_the_real_case_and_are_measured_not_extrapolated():
    from benchmarks.scheduler import CHILD_SECONDS, at_child_seconds

    stats = {"utilisation": 0.9999, "idle_gap_s": {"mean": 0.05}}
    # a driver cost that extrapolation would call too slow for 256 GPUs does not override a measurement
    assert at_child_seconds(CHILD_SECONDS, stats, 2.0, 256) == (0.9999, "measured: held children of 300 s")
    util, basis = at_child_seconds(2.0, stats, 2.0, 256)
    assert util == pytest.approx(CHILD_SECONDS / (256 * 2.0)) and basis.startswith("extrapolated")


def test_h100_benchmark_counts_the_seed_genomes_flops_by_hand_and_refuses_a_machine_without_cuda():
    from benchmarks.h100 import flops_per_token, knob, peak_flops, rates
    from experiments import profiles

    source = (REPO / "trainer" / "seeds" / "train.py").read_text()
    h100 = profiles.load("h100")
    assert [knob(source, name, "h100") for name in ("DEPTH", "MODEL_DIM", "MLP_RATIO")] == [8, 512, 4]
    # embedding 8192 x 512, lm_head 512 x 8192, and per block qkv 3 x 512^2 + proj 512^2 + MLP 2 x 4 x 512^2
    params = 2 * 8192 * 512 + 8 * (3 + 1 + 8) * 512 * 512
    matmul = 6 * (params - 8192 * 512)  # the embedding is a lookup, not a product
    attention = 12 * 8 * 512 * 2048
    assert flops_per_token(source, h100, params) == matmul + attention == 276_824_064
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989.4e12 and peak_flops("a GPU nobody listed") is None

    # 100 batch requests of 1,000 tokens, the first 10 untimed; train.py ran 400 s in all, 330 s past the budget
    ran = dict(num_params=params, device="NVIDIA H200", num_steps=100, tokens=100_000, training_seconds=400.0)
    measured = rates(ran | {"total_seconds": 430.0}, h100, source)
    assert measured["tokens_per_s"] == 250.0 and measured["steady_tokens_per_s"] == 90_000 / 300
    assert measured["steady_mfu"] == 276_824_064 * 300.0 / 989.4e12 and measured["overhead_share_of_budget"] == 0.1

    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "benchmarks.h100"], capture_output=True, text=True, cwd=REPO, env=env)
    assert done.returncode != 0 and done.stderr.strip() == "h100: needs a CUDA GPU and torch sees none here"


def test_h100_benchmark_on_the_embedded_plays_scores_every_whole_validation_row():
    from benchmarks.h100 import on_dataset
    from experiments import profiles
    from fitness import data

    smoke = profiles.load("smoke")
    big = dataclasses.replace(smoke, dataset="climbmix", num_shards=3, eval_tokens=10**9)
    moved = on_dataset(big, "shakespeare")
    cache = data.prepare("shakespeare", smoke.vocab_size, (smoke.seq_len,), 0)
    rows = min(len(cache.rows(split, smoke.seq_len)) for split in ("val", "test"))
    assert moved == dataclasses.replace(big, dataset="shakespeare", num_shards=0, eval_tokens=rows * smoke.seq_len)
    assert on_dataset(smoke, "shakespeare") is smoke
