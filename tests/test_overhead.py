"""The per-child overhead benchmark at its smallest: one cold-scorer and one warm-scorer child, smoke profile."""

from __future__ import annotations

import json

import pytest

CHILD_PHASES = {"child_start", "child_other"}
SCORE_PHASES = {"score_load", "score_probe", "score_eval", "score_other"}


@pytest.mark.slow
def test_benchmark_records_phases_that_add_up_to_each_childs_overhead(tmp_path):
    from benchmarks.overhead import main

    main(["--profile", "smoke", "--budget", "2", "--repeats", "1", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "overhead.json").read_text())
    assert {"platform", "cpu_count", "python", "date", "threads"} <= set(report["machine"])
    assert report["commit"] and report["benchmark"] == "overhead"
    assert [r["mode"] for r in report["runs"]] == ["cold", "warm"]
    for r in report["runs"]:
        assert CHILD_PHASES <= set(r["phases"]) and all(v >= 0 for v in r["phases"].values())
        assert sum(r["phases"].values()) == pytest.approx(r["overhead_s"], abs=1e-3)
        assert r["overhead_s"] == pytest.approx(r["total_s"] - r["training_s"])
        assert len(r["load_before"]) == 3 and len(r["load_after"]) == 3
        if r["status"] == "ok":  # a loaded machine can push a 2 s child over budget; then nothing is scored
            assert SCORE_PHASES <= set(r["phases"])
    for mode, run in zip(("cold", "warm"), report["runs"], strict=True):
        summary = report["summary"][mode]
        assert summary["children"] == 1 and summary["children_ok"] == (run["status"] == "ok")
        if run["status"] == "ok":  # the median of one child is that child
            assert {k: v["median"] for k, v in summary["phases"].items()} == run["phases"]
    assert (tmp_path / "overhead.png").stat().st_size > 1000
    checks = report["checks"]
    assert checks["accounting"] == "cgroup" and 0 < checks["read_s"] < checks["per_child_s_at_most"]
