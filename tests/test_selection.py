"""Selection helpers: tournament rates, elitism, survivor selection, the noise gate, repeat policy."""

from __future__ import annotations

import collections
import random

import pytest

from population.messages import Fitness, PopulationConfig
from population.selection import (
    Candidate,
    incumbent,
    pool_tournament_size,
    power_rank,
    rank,
    repeat_candidates,
    select_survivors,
    tournament,
)
from population.survivors import Survivors


def cand(gid: str, *values: float, size: int = 100) -> Candidate:
    return Candidate(gid, Fitness.of(list(values)), size)


@pytest.mark.parametrize("k", [2, 3])
def test_tournament_picks_each_rank_at_the_rate_the_tournament_size_implies(k):
    n, draws = 8, 80_000
    ranked = rank(cand(f"g{r}", 1.0 + r / 100) for r in range(n))
    counts = collections.Counter(c.id for c in tournament(ranked, k, draws, random.Random(1234)))
    for r in range(1, n + 1):
        expected = ((n - r + 1) ** k - (n - r) ** k) / n**k
        assert counts[f"g{r - 1}"] / draws == pytest.approx(expected, abs=0.006)


def test_better_genomes_are_picked_more_often():
    ranked = rank(cand(f"g{r}", 1.0 + r / 100) for r in range(6))
    counts = collections.Counter(c.id for c in tournament(ranked, 3, 20_000, random.Random(7)))
    assert [counts[f"g{r}"] for r in range(6)] == sorted((counts[f"g{r}"] for r in range(6)), reverse=True)


def test_rank_drops_failed_genomes_and_prefers_shorter_source_at_equal_val_bpb():
    ranked = rank([cand("long", 1.0, size=500), cand("failed", size=10), cand("short", 1.0, size=400)])
    assert [c.id for c in ranked] == ["short", "long"]


def test_elites_always_survive_selection():
    ranked = rank(cand(f"g{r:02d}", 1.0 + r / 100) for r in range(30))
    for seed in range(50):
        kept = select_survivors(ranked, 8, ranked[:3], 2, random.Random(seed))
        assert len(kept) == 8 and {"g00", "g01", "g02"} <= {c.id for c in kept}
        assert kept == sorted(kept, key=lambda c: c.key)


def test_survivor_selection_keeps_everyone_when_the_pool_is_small():
    ranked = rank(cand(f"g{r}", 1.0 + r) for r in range(3))
    assert select_survivors(ranked, 8, ranked[:1], 3, random.Random(0)) == ranked


def test_survivor_selection_without_elitism_favours_the_better_half():
    ranked = rank(cand(f"g{r:02d}", 1.0 + r / 100) for r in range(20))
    kept = collections.Counter(c.id for s in range(300) for c in select_survivors(ranked, 5, [], 3, random.Random(s)))
    assert sum(kept[f"g{r:02d}"] for r in range(10)) > 3 * sum(kept[f"g{r:02d}"] for r in range(10, 20))


SEED = cand("seed", 1.0, 1.0004, 0.9996)  # sigma ~ 4e-4
SIGMA = 4e-4


def test_a_challenger_inside_the_noise_band_does_not_displace_the_best():
    lucky = cand("lucky", 0.9994)
    assert incumbent(lucky, SEED, SIGMA, 2.0) == SEED


def test_a_challenger_beyond_the_margin_displaces_the_best():
    strong = cand("strong", 0.998)
    assert incumbent(strong, SEED, SIGMA, 2.0) == strong


def test_without_a_noise_estimate_only_confirmed_genomes_lead():
    assert incumbent(cand("x", 0.9), SEED, None, 2.0) == SEED
    assert incumbent(cand("x", 0.9), None, None, 2.0).id == "x"


def test_repeat_candidates_measure_noise_first_then_only_the_would_be_best():
    seed_once = cand("seed", 1.0)
    ranked = rank([seed_once, cand("a", 0.9995), cand("b", 1.01)])
    assert repeat_candidates(ranked, seed_once, 3, None, 2.0, 3) == ["seed", "a"]
    assert repeat_candidates(ranked, seed_once, 1, None, 2.0, 3) == ["seed"]
    ranked = rank([SEED, cand("a", 0.9995), cand("b", 0.99999), cand("c", 1.01), cand("tie", 1.0)])
    assert repeat_candidates(ranked, SEED, 5, SIGMA, 2.0, 3) == ["a"]  # b is a would-be best only after a
    ranked = rank([SEED, cand("tie", 1.0), cand("behind", 1.0003)])  # inside the band, not ahead of the best
    assert repeat_candidates(ranked, SEED, 5, SIGMA, 2.0, 3) == []
    ranked = rank([SEED, cand("d", 0.9993, 0.9995, 0.9994)])  # confirmed: it leads, nothing to repeat
    assert repeat_candidates(ranked, SEED, 5, SIGMA, 2.0, 3) == []


def test_a_clear_winner_gets_no_repeats_a_contested_best_does():
    clear = cand("clear", 0.95)  # far beyond the noise band of everything else
    ranked = rank([SEED, clear, cand("b", 0.99)])
    assert repeat_candidates(ranked, clear, 3, SIGMA, 2.0, 3) == []
    close = cand("close", 0.9501)  # within 2 sigma of the best: either could be the better one
    ranked = rank([SEED, clear, close])
    assert repeat_candidates(ranked, clear, 3, SIGMA, 2.0, 3) == ["clear"]
    confirmed = cand("confirmed", 0.9501, 0.9501, 0.9501)  # a confirmed contender still contests the best
    ranked = rank([SEED, clear, confirmed])
    assert repeat_candidates(ranked, clear, 3, SIGMA, 2.0, 3) == ["clear"]
    clear_confirmed = cand("clear", 0.95, 0.95, 0.95)
    assert repeat_candidates(rank([SEED, clear_confirmed, close]), clear_confirmed, 3, SIGMA, 2.0, 3) == []


def test_the_tournament_grows_with_the_pool_so_the_best_wins_a_steady_share_of_picks():
    assert [pool_tournament_size(m, 3, 1.0) for m in (2, 4, 16, 32)] == [3, 4, 16, 32]
    for m in (8, 32):
        ranked = rank(cand(f"g{r:02d}", 1.0 + r / 100) for r in range(m))
        k = pool_tournament_size(m, 3, 1.0)
        picks = collections.Counter(c.id for c in tournament(ranked, k, 20_000, random.Random(5)))
        assert picks["g00"] / 20_000 == pytest.approx(1 - (1 - 1 / m) ** m, abs=0.015)  # about 63%, whatever m


def test_power_law_picks_rank_r_in_proportion_to_r_to_the_minus_power():
    ranked = rank(cand(f"g{r}", 1.0 + r / 100) for r in range(4))
    picks = collections.Counter(c.id for c in power_rank(ranked, 2.0, 40_000, random.Random(3)))
    total = sum((r + 1) ** -2.0 for r in range(4))
    for r in range(4):
        assert picks[f"g{r}"] / 40_000 == pytest.approx((r + 1) ** -2.0 / total, abs=0.01)


@pytest.mark.parametrize("pool", ["front", "survivors"])
def test_a_genome_evaluated_since_the_last_survivor_selection_is_a_parent_at_once_only_from_the_front(pool):
    state = Survivors("seed", PopulationConfig(population_size=4, parent_pool=pool, paired=False))  # no new best
    state.apply("seed", 1.0, 10, counted=False)  # the first survivor selection: the seed alone
    for i, val_bpb in enumerate([0.99, 0.98, 0.90]):  # children of generation 1, still pending
        state.apply(f"c{i}", val_bpb, 10, counted=True)
    picks = collections.Counter(state.select_parents(1, random.Random(i))[0] for i in range(400))
    if pool == "survivors":
        assert picks == {"seed": 400}
    else:
        assert picks.most_common(1)[0][0] == "c2" and picks["c2"] > 200
