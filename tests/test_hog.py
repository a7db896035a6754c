"""benchmarks.hog's verdict on its pairs (the training itself is the trainer's, tested elsewhere)."""

from __future__ import annotations

import pytest

from benchmarks.hog import summarize


def run(steps: int | None, val_bpb: float | None) -> dict:
    return {"status": "ok" if steps else "crash", "num_steps": steps, "val_bpb": val_bpb}


def test_a_pair_meets_the_bounds_only_with_the_steps_kept_and_the_score_held():
    pairs = [
        (run(200, 2.80), run(190, 2.82)),  # within both bounds
        (run(200, 2.80), run(150, 2.81)),  # 75% of the steps
        (run(200, 2.80), run(210, 2.74)),  # the score moved by 0.06
        (run(200, 2.80), run(None, None)),  # the hogged run failed
    ]
    summary = summarize(pairs)
    assert [p["ok"] for p in summary["pairs"]] == [True, False, False, False] and summary["met"] == 1
    assert summary["median_steps_kept"] == pytest.approx(0.95)  # over the pairs that both finished
    assert summary["median_val_bpb_shift"] == pytest.approx(0.01)
