"""The search benchmark in miniature, as a user runs it (`python -m benchmarks.search`), through the real
trainer: one search seed, one slot, one child, every method; then the same command again, which must
train nothing (every evaluation comes from the cache) and report the same figures."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

import pytest
from conftest import REPO

TINY = ("--seeds", "1", "--slots", "1", "--children", "1", "--noise-repeats", "1", "--confirm-seeds", "1",
        "--budget", "0.5", "--landscapes", "1")  # fmt: skip
METHODS = ("evolve", "greedy", "greedy_equal_wall", "parallel_greedy", "independent_greedy", "random")


def search(*args: str) -> dict:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "benchmarks.search", *args], capture_output=True, text=True,
                          cwd=REPO, env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.timeout(1200)  # about 30 s on an idle 2-core machine; a shared one (load 40) took 10 minutes
def test_search_benchmark_reports_every_method_and_resumes_from_its_cache(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    search(*TINY, "--out", str(out), "--work", str(work))
    report = json.loads((out / "search.json").read_text())
    assert (out / "search.png").stat().st_size > 0
    assert report["complete"] and report["runs_done"] == report["runs_total"] == len(METHODS)
    settings = report["settings"]
    assert settings["budget_basis"] == "cpu_seconds" and settings["slots"] == 1 and settings["seeds"] == 1
    assert settings["confirm_seeds"] == [1000] and settings["profile"]["budget_seconds"] == 0.5
    assert set(report["methods"]) == set(METHODS)
    for method, summary in report["methods"].items():
        [run] = summary["runs"]
        seed, pick = run["confirm_val_bpb"]["seed"], run["confirm_val_bpb"]["pick"]
        assert run["gain"] == pytest.approx(statistics.fmean(seed) - statistics.fmean(pick))
        assert summary["gains"] == [run["gain"]] and summary["median_gain"] == run["gain"]
        assert run["by_kind"]["noise"] == 1 and run["children"] == 1, method
    ratio = report["ratio_vs_best_baseline"]
    assert ratio["baseline"] == max(
        ("greedy", "parallel_greedy", "independent_greedy", "random"), key=lambda m: report["methods"][m]["median_gain"]
    )
    assert set(ratio) == {"baseline", "seeds", "median", "ci", "undefined_share"}
    agreement = report["simulator"]["agreement"]
    assert sorted(agreement["real_ranking"]) == sorted(agreement["simulated_ranking"]) == sorted(METHODS)
    # one slot, one child: every method's first child is the same proposal (shared random streams), so
    # the six runs train four genome-seed pairs at most: the seed and the child at seed 0 and at 1000
    assert 2 <= report["compute"]["evaluations"] <= 4
    first = {m: s["gains"] for m, s in report["methods"].items()}

    search(*TINY, "--out", str(out), "--work", str(work))  # resumes: every run is already done
    again = json.loads((out / "search.json").read_text())
    assert {m: s["gains"] for m, s in again["methods"].items()} == first
    (work / "runs" / "random-0.json").unlink()  # a run lost: it is run again, from the cached evaluations
    search(*TINY, "--out", str(out), "--work", str(work))
    again = json.loads((out / "search.json").read_text())
    [random_run] = again["methods"]["random"]["runs"]
    assert random_run["trained"] == 0 and random_run["reused"] > 0
    assert {m: s["gains"] for m, s in again["methods"].items()} == first
