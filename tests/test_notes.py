"""The research notes the LLM is shown, built from an archive frame: ledger verdicts and inspirations."""

from __future__ import annotations

import random

import pandas as pd

from evolve import notes


def frame(rows: list[tuple]) -> pd.DataFrame:
    columns = "genome_id parents operator description kind status reason val_bpb".split()
    data = [dict(zip(columns, row, strict=True)) for row in rows]
    for i, row in enumerate(data):
        row.update(eval_id=i, num_steps=100, num_params=1_000_000, training_seconds=10.0, tokens=50_000)
        row["peak_memory_mb"] = 300.0
    return pd.DataFrame(data)


ARCHIVE = frame(
    [
        ("seed", "", "seed", "seed genome", "noise", "ok", "", 2.00),
        ("seed", "", "seed", "seed genome", "noise", "ok", "", 2.02),
        ("a", "seed", "mutate", "tiny tweak", "child", "ok", "", 2.005),
        ("b", "seed", "mutate", "wider MLP", "child", "ok", "", 1.80),
        ("b", "seed", "mutate", "wider MLP", "repeat", "ok", "", 1.82),
        ("c", "seed", "crossover", "one lucky run", "child", "ok", "", 1.90),
        ("d", "b", "hyperparam", "LR way up", "child", "crash", "RuntimeError: nan", None),
        ("e", "b", "mutate", "no QK norm", "child", "ok", "", 2.2),
    ]
)


def test_the_ledger_reads_each_delta_against_the_noise_and_never_calls_a_worse_result_kept():
    table = notes.standings(ARCHIVE)
    ledger = notes.ledger_text(table, 0.01, "seed").splitlines()
    assert [line.split()[1] for line in ledger] == ["a", "b", "c", "d", "e"]  # the seed is not an idea
    assert "within noise" in ledger[0]
    assert "better" in ledger[1] and "confirmed" in ledger[1] and "(n=2)" in ledger[1]
    assert "better" in ledger[2] and "one run, unconfirmed" in ledger[2]
    assert "FAILED (crash: RuntimeError: nan)" in ledger[3]
    assert "worse" in ledger[4] and "vs its parent b" in ledger[4]
    assert not any("kept" in line for line in ledger)


def test_noise_and_metrics_carry_sigma_and_mean_with_n():
    table = notes.standings(ARCHIVE)
    assert "sigma = 0.0100" in notes.noise_text(0.01, 2) and "2 runs of the seed" in notes.noise_text(0.01, 2)
    assert notes.metrics_text(table["b"], 0.01).startswith("val_bpb 1.8100 ± 0.0071 (n=2)")
    budget = notes.budget_text(60, "cpu (2 cores per child, 1 at once)", table["b"])
    assert "60 s on cpu" in budget and "5,000 tokens/s" in budget and "peak memory 300 MB" in budget


def test_inspirations_are_the_best_confirmed_then_a_diverse_one_never_the_parent():
    table = notes.standings(ARCHIVE)
    picked = notes.pick_inspirations(table, {"seed", "a"}, random.Random(0))
    assert picked[0].genome_id == "b" and len(picked) == 2
    assert picked[1].genome_id in {"c", "e"}


def test_the_machine_the_llm_is_told_of_names_the_memory_a_child_may_use():
    from evolve.session import machine_text

    assert machine_text("cpu", "slot", 2, 1, None) == "cpu (2 cores per child, 1 at once, 16 GiB of memory each)"
    gpu = machine_text("cuda", "GPU", 1, 8, 79.6)
    assert gpu == "cuda (one GPU per child, 8 at once, 79.6 GiB of GPU memory each)"
    assert "16 GiB of memory" in notes.budget_text(60, machine_text("cpu", "slot", 2, 1, None), None)
