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
        assert run["by_kind"]["noise"] == 1 and run["by_kind"]["repeat"] == 0, method
        # a pruning run (evolve's default) is stopped by its clock, not its count: a cheap child leaves room
        assert run["children"] == 1 or (method == "evolve" and run["children"] >= 1), method
    ratio = report["ratio_vs_best_baseline"]
    assert ratio["baseline"] == max(
        ("greedy", "parallel_greedy", "independent_greedy", "random"), key=lambda m: report["methods"][m]["median_gain"]
    )
    assert set(ratio) == {"baseline", "seeds", "median", "ci", "undefined_share"}
    agreement = report["simulator"]["agreement"]
    assert sorted(agreement["real_ranking"]) == sorted(agreement["simulated_ranking"]) == sorted(METHODS)
    # one slot, one child: every method's first child is the same proposal (shared random streams), so
    # the six runs train five genome-seed pairs at most: the seed and the child at seed 0 and at 1000, and
    # evolve's repeat of that child (pruning stops evolve at the wall clock, not at its one child)
    assert 2 <= report["compute"]["evaluations"] <= 5
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


def runs(method: str, gains: list[float | None]) -> list[dict]:
    return [{"method": method, "seed": s, "gain": g} for s, g in enumerate(gains)]


def test_greedy_gets_the_slot_time_of_the_others_on_one_slot_and_greedy_equal_wall_their_wall_clock():
    from benchmarks.search import Setting, plan
    from experiments import profiles

    setting = Setting(profiles.load("smoke"), slots=8, children=61, noise_repeats=3, confirm_seeds=(1000,), cache="")
    assert plan("greedy", setting) == ("greedy", 1, 61)  # (61 + 3) / 8 = 8 rounds of 8 slots: 64 evaluations
    assert plan("greedy_equal_wall", setting) == ("greedy", 8, 61)  # one slot of 8 busy, for 8 rounds
    assert plan("parallel_greedy", setting) == ("parallel-greedy", 8, 61)
    odd = Setting(profiles.load("smoke"), slots=8, children=60, noise_repeats=3, confirm_seeds=(1000,), cache="")
    assert plan("greedy", odd) == ("greedy", 1, 61)  # the others' last round is part-empty but paid for


def test_evolve_runs_a_runs_defaults_its_variants_undo_one_change_and_the_baselines_do_not_prune():
    from benchmarks.search import VARIANTS, Setting, config, plan
    from evolve.confirm import DEFAULT_TOP
    from evolve.settings import PRUNING
    from experiments import profiles

    setting = Setting(profiles.load("smoke"), slots=8, children=61, noise_repeats=3, confirm_seeds=(1000,), cache="")
    evolve = config("evolve", setting)
    assert evolve.pruning == PRUNING and evolve.confirm_top == DEFAULT_TOP and evolve.population.paired
    assert evolve.noise_repeats == 3 and evolve.fresh_seeds == (1000,)
    for method in ("greedy", "greedy_equal_wall", "parallel_greedy", "independent_greedy", "random"):
        assert config(method, setting).pruning is None
    no_pruning = config("evolve_no_pruning", setting)
    assert no_pruning.pruning is None and no_pruning.population.paired
    unpaired = config("evolve_unpaired", setting)
    assert not unpaired.population.paired and unpaired.pruning == PRUNING
    both = config("evolve_unpaired_no_pruning", setting)
    assert not both.population.paired and both.pruning is None
    assert config("evolve_no_confirmation", setting).confirm_top == 0
    tenth = config("evolve_unpaired_confirm_tenth", setting)
    assert tenth.confirm_share == 0.1 and not tenth.population.paired
    before = config("evolve_before", setting)
    assert before.population.parent_pool == "survivors" and before.population.tournament_share == 0
    assert not before.population.paired and before.pruning is None and before.confirm_top == 0
    k3 = config("evolve_k3_survivors", setting)
    assert k3.population.parent_pool == "survivors" and k3.population.tournament_share == 0
    assert k3.population.tournament_size == 3 and k3.population.paired and k3.pruning == PRUNING
    no_transplants = config("evolve_no_transplants", setting)
    assert no_transplants.transplant_rate == 0 and evolve.transplant_rate > 0 and no_transplants.pruning == PRUNING
    assert all(plan(v, setting) == ("evolve", 8, 61) for v in VARIANTS)


def test_the_ratio_is_of_median_gains_over_paired_seeds_with_a_bootstrap_interval_around_it():
    from benchmarks.search_report import ratio

    evolve, baseline = runs("evolve", [0.2, 0.3, 0.4, None]), runs("greedy", [0.1, 0.1, 0.2, 0.1, 0.3])
    r = ratio(evolve, baseline, "greedy")
    assert r["seeds"] == 3  # seed 3's evolve pick failed its confirmation, seed 4 has no evolve run
    assert r["median"] == pytest.approx(0.3 / 0.1)
    assert r["ci"][0] <= r["median"] <= r["ci"][1] and r["undefined_share"] == 0
    flat = ratio(evolve, runs("greedy", [0.0, -0.1, 0.0]), "greedy")
    assert flat["median"] is None and flat["ci"] == [None, None] and flat["undefined_share"] == 1


def test_rankings_agree_only_when_both_order_the_common_methods_alike():
    from benchmarks.search_report import agreement

    same = agreement(["evolve", "greedy", "random"], ["evolve", "greedy", "independent_greedy", "random"])
    assert same["same_order"] and same["same_best"] and same["kendall_tau"] == 1
    flipped = agreement(["evolve", "greedy", "random"], ["random", "greedy", "evolve"])
    assert not flipped["same_order"] and not flipped["same_best"] and flipped["kendall_tau"] == -1


@pytest.mark.timeout(900)
def test_a_run_that_prunes_gets_the_curve_a_row_cached_without_one_lacks_and_the_row_keeps_its_score(tmp_path):
    from benchmarks.real_landscape import RealLandscape, source_id
    from benchmarks.search import bench_profile

    real = RealLandscape(bench_profile("smoke", 0.5, None), tmp_path / "cache")
    try:
        seed = real.seed_genome()
        assert real.evaluate(seed, 0).loss_curve  # a row trained now keeps its curve
        path = tmp_path / "cache" / f"{source_id(real.source(seed))}-0.json"
        row = json.loads(path.read_text())
        del row["loss_curve"]  # as rows cached before curves were kept
        row["val_bpb"], row["cost_seconds"] = 9.0, 99.0  # what the other methods' runs saw, whatever it was
        path.write_text(json.dumps(row))
        assert real.evaluate(seed, 0) == (9.0, 99.0, ())  # a run that does not prune trains nothing
        assert real.trained == 1
        real.curves = True
        filled = real.evaluate(seed, 0)
        assert filled.val_bpb == 9.0 and filled.cost_seconds == 99.0 and len(filled.loss_curve) >= 10
        assert real.trained == 2 and json.loads(path.read_text())["curve_backfill"]["status"] == "ok"
        assert real.evaluate(seed, 0) == filled and real.trained == 2  # once
    finally:
        real.close()
