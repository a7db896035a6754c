"""The search simulator: the real policy on virtual slots, the surrogate landscape, the table."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import landscape_data, landscape_fit, select_ablation, simulate
from benchmarks.landscape import SurrogateLandscape
from benchmarks.simrun import run_strategy
from evolve.confirm import DEFAULT_TOP
from population.messages import PopulationConfig

KNOB = "MATRIX_LR"


class Bowl:
    """A landscape nobody fitted: one knob matters (best at 4x the seed's value), every child costs 10 s."""

    def __init__(self, seed_genome: dict) -> None:
        self._seed = seed_genome

    def seed_genome(self) -> dict:
        return dict(self._seed)

    def mean(self, genome: dict) -> float:
        return 3.0 + (math.log2(genome[KNOB] / self._seed[KNOB]) - 2.0) ** 2 / 10

    def evaluate(self, genome: dict, training_seed: int):
        return self.mean(genome) + 0.001 * (training_seed % 3), 10.0, ()


@pytest.fixture(scope="module")
def observations():
    return landscape_data.load()


@pytest.fixture(scope="module")
def landscape(observations):
    return SurrogateLandscape.fitted(0, observations, lam=1.0)


def test_a_landscape_written_elsewhere_plugs_in_and_every_strategy_improves_on_it():
    bowl = Bowl(landscape_data.seed_knobs())
    for strategy in ("evolve", "parallel-greedy", "independent", "random"):
        history = run_strategy(strategy, bowl, slots=4, children=80, seed=1)
        assert 0 < history.children <= 80  # evolve's repeats share the wall clock
        assert history.true_gain > 0, strategy


def test_a_run_is_the_same_twice_for_the_same_seed(landscape):
    first = run_strategy("evolve", landscape, slots=8, children=40, seed=3)
    second = run_strategy("evolve", landscape, slots=8, children=40, seed=3)
    assert first.evaluations == second.evaluations and first.pick == second.pick


def test_greedy_trains_one_child_at_a_time_and_gets_fewer_in_the_same_wall_clock(landscape):
    greedy = run_strategy("greedy", landscape, slots=8, children=80, seed=1)
    parallel = run_strategy("parallel-greedy", landscape, slots=8, children=80, seed=1)
    children = [t for t, kind, *_ in greedy.evaluations if kind == "child"]
    assert children == sorted(children) and len(children) < 80 / 4
    assert parallel.children == 80


def test_only_evolve_spends_evaluations_on_repeats_and_every_strategy_on_the_seed_noise(landscape):
    for strategy in ("evolve", "random"):
        kinds = [kind for _, kind, *_ in run_strategy(strategy, landscape, slots=8, children=60, seed=2).evaluations]
        assert kinds.count("noise") == 3
        assert (kinds.count("repeat") > 0) == (strategy == "evolve")


def test_the_fit_ranks_held_out_runs_better_than_chance(observations):
    quality = landscape_fit.held_out(observations, lam=1.0)
    assert quality["points"] > 100
    assert quality["spearman_pooled"] > 0.5


def test_noise_has_a_share_common_to_every_genome_at_one_training_seed(landscape):
    a = landscape.seed_genome()
    b = a | {"MODEL_DIM[cpu]": 64}
    diffs = [landscape.evaluate(a, s)[0] - landscape.evaluate(b, s)[0] for s in range(40)]
    spread_a = [landscape.evaluate(a, s)[0] for s in range(40)]
    assert landscape.fit.offset_sd > 0
    assert abs(max(diffs) - min(diffs)) < abs(max(spread_a) - min(spread_a)) * 2


def test_a_wider_model_costs_more_slot_time_and_a_huge_learning_rate_fails(landscape):
    seed = landscape.seed_genome()
    _, seed_cost, curve = landscape.evaluate(seed, 0)
    _, wide_cost, _ = landscape.evaluate(seed | {"MODEL_DIM[cpu]": 512}, 0)
    assert wide_cost > seed_cost
    assert landscape.evaluate(seed | {KNOB: seed[KNOB] * 20}, 0)[0] is None
    losses = [loss for _, loss in curve]
    assert losses[0] > losses[-1]  # the loss curve falls over the budget


def test_quick_mode_writes_a_table_row_for_every_strategy(tmp_path):
    out = tmp_path / "sim.json"
    assert simulate.main(["--quick", "--seeds", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [r["strategy"] for r in report["table"]] == ["evolve", "greedy", "parallel-greedy", "independent", "random"]
    assert report["fit_quality"]["spearman_pooled"] > 0.5 and out.with_suffix(".png").exists()


def test_the_selection_ablation_runs_every_variant_against_parallel_greedy(tmp_path):
    out = tmp_path / "ablation.json"
    assert select_ablation.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [r["variant"] for r in report["table"]] == list(select_ablation.VARIANTS)
    assert all(0 <= r["win_rate_vs_parallel_greedy"] <= 1 and r["landscapes"] == 2 for r in report["table"])
    defaults = report["variants"]["defaults (share 1.0, front, unpaired, confirmation)"]  # the product's defaults
    assert all(getattr(PopulationConfig(), k) == v for k, v in defaults["population"].items())
    assert defaults["confirm_top"] == DEFAULT_TOP
