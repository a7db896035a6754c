"""Population as a whole: resume, survivors and parents, the noise-gated best, lineage, Ray actor, bench."""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess

import pytest

from fitness.result import RunResult
from population import LLMSpend, Population, PopulationConfig, UnknownGenome

WHEN = dict(started="2025-01-01T00:00:00+00:00", finished="2025-01-01T00:05:00+00:00")
CREATED = "2025-01-01T00:00:00+00:00"
CONFIG = PopulationConfig(
    population_size=4, tournament_size=2, elitism=1, noise_margin_sigma=2.0, confirm_repeats=3, paired=False
)


def ok(val_bpb: float) -> RunResult:
    return RunResult("ok", val_bpb=val_bpb, peak_memory_mb=1000.0)


def child(pop: Population, seed_source: str, i: int, parents: list[str], generation: int = 1):
    source = seed_source + f"# child {i}\n"
    return pop.add(source, parents, "mutate", f"child {i}", generation, created=CREATED)[0]


def play(pop: Population, seed_source: str, start: int, stop: int) -> None:
    """A deterministic stretch of a run: children of tournament-picked parents, some crashing, some repeated."""
    for i in range(start, stop):
        rng = random.Random(i)
        parent = pop.select_parents(1, rng)[0]
        kid = child(pop, seed_source, i, [parent.id], i // 4)
        result = RunResult("crash", reason="boom") if i % 5 == 0 else ok(1.0 - i / 1000 + rng.gauss(0, 1e-3))
        pop.record(kid.id, result, generation=i // 4, **WHEN)
        for gid in pop.repeat_candidates(1):
            pop.record(gid, ok(pop.fitness(gid).mean + rng.gauss(0, 3e-4)), kind="repeat", generation=i // 4, **WHEN)


def state(pop: Population) -> tuple:
    summary = {k: v for k, v in dataclasses.asdict(pop.summary()).items() if not k.endswith("_id")}
    return summary, [g.description for g in pop.survivors()], pop.best().description, len(pop.archive())


def started(tmp_path, name: str, seed_source: str) -> Population:
    pop = Population.open(tmp_path / name, seed_source, CONFIG)
    for value in (1.0, 1.0004, 0.9997):
        pop.record(pop.seed().id, ok(value), kind="noise", generation=0, **WHEN)
    return pop


def test_reopening_a_run_restores_the_population_and_continues_identically(tmp_path, seed_source):
    with started(tmp_path, "straight", seed_source) as pop:
        play(pop, seed_source, 1, 20)
        expected = state(pop)
    with started(tmp_path, "resumed", seed_source) as pop:
        play(pop, seed_source, 1, 11)
        before = state(pop)
    with Population.open(tmp_path / "resumed", None, CONFIG) as pop:
        assert state(pop) == before
        play(pop, seed_source, 11, 20)
        assert state(pop) == expected


def test_failed_children_never_become_parents_or_survivors(tmp_path, seed_source):
    with started(tmp_path, "run", seed_source) as pop:
        crashed = {child(pop, seed_source, i, [pop.seed().id]).id for i in range(3)}  # + 1 = a generation
        for gid in crashed:
            pop.record(gid, RunResult("nan"), generation=1, **WHEN)
        fine = child(pop, seed_source, 99, [pop.seed().id])
        pop.record(fine.id, ok(1.01), generation=1, **WHEN)
        picked = {g.id for g in pop.select_parents(200, random.Random(0))}
        assert picked == {pop.seed().id, fine.id}
        assert not crashed & {g.id for g in pop.survivors()}


def test_the_best_always_survives_each_generation(tmp_path, seed_source):
    with started(tmp_path, "run", seed_source) as pop:
        rng = random.Random(3)
        for i in range(1, 41):
            kid = child(pop, seed_source, i, [pop.select_parents(1, rng)[0].id])
            pop.record(kid.id, ok(1.0 + rng.uniform(-0.01, 0.01)), generation=i // 4, **WHEN)
            survivors = pop.survivors()
            assert len(survivors) <= CONFIG.population_size and pop.best() in survivors


def test_a_lucky_run_inside_the_noise_band_needs_repeats_to_lead(tmp_path, seed_source):
    with started(tmp_path, "run", seed_source) as pop:
        sigma = pop.noise_sigma()
        assert sigma == pytest.approx(3.5e-4, rel=0.1)
        lucky = child(pop, seed_source, 1, [pop.seed().id])
        pop.record(lucky.id, ok(1.0002 - sigma), generation=1, **WHEN)
        assert pop.best() == pop.seed() and pop.repeat_candidates(2) == [lucky.id]
        for _ in range(2):
            pop.record(lucky.id, ok(1.0002 - sigma), kind="repeat", generation=1, **WHEN)
        assert pop.best() == lucky and pop.fitness(lucky.id).count == 3
        strong = child(pop, seed_source, 2, [lucky.id])
        pop.record(strong.id, ok(0.99), generation=1, **WHEN)
        assert pop.best() == strong
        assert subprocess.check_output(["git", "rev-parse", "best"], cwd=pop.run_dir, text=True).strip() == strong.id


def test_lineage_follows_both_parents_back_to_the_seed(tmp_path, seed_source):
    with started(tmp_path, "run", seed_source) as pop:
        seed = pop.seed()
        a = pop.add(seed_source.replace("MLP_RATIO = 4 ", "MLP_RATIO = 3 "), [seed.id], "mutate", "mlp 3", 1)[0]
        b = pop.add(seed_source.replace("ROPE_BASE = 10000.0 ", "ROPE_BASE = 5e4 "), [seed.id], "mutate", "rope", 1)[0]
        c_source = a.source.replace("ROPE_BASE = 10000.0 ", "ROPE_BASE = 5e4 ")
        c = pop.add(c_source, [a.id, b.id], "crossover", "both", 2)[0]
        for gid, value in ((a.id, 0.99), (b.id, 0.995), (c.id, 0.98)):
            pop.record(gid, ok(value), generation=1, **WHEN)
        lineage = pop.lineage(c.id[:10])
    assert lineage.ancestors[0] == seed.id and set(lineage.ancestors) == {seed.id, a.id, b.id}
    assert {(s.parent_id, s.genome_id) for s in lineage.steps} == {
        (seed.id, a.id),
        (seed.id, b.id),
        (a.id, c.id),
        (b.id, c.id),
    }
    assert [s.genome_id for s in lineage.path] == [a.id, c.id]
    assert [round(s.delta, 4) for s in lineage.path] == [round(0.99 - pop.fitness(seed.id).mean, 4), -0.01]
    assert "-MLP_RATIO = 4" in lineage.path[0].diff and "+ROPE_BASE = 5e4" in lineage.path[1].diff


def test_summary_counts_evaluations_by_status_and_llm_cost(tmp_path, seed_source):
    with started(tmp_path, "run", seed_source) as pop:
        kid = child(pop, seed_source, 1, [pop.seed().id])
        pop.record(kid.id, RunResult("timeout"), generation=1, llm=LLMSpend(cost_usd=0.25), **WHEN)
        summary = pop.summary()
    assert summary.by_status == {"ok": 3, "timeout": 1} and summary.llm_cost_usd == 0.25
    assert summary.genomes == 2 and summary.evaluations == 4 and summary.best_id == summary.seed_id
    assert summary.seed_val_bpb == pytest.approx(1.0000333, abs=1e-6)


def test_the_actor_serves_the_population_through_ray(ray_session, tmp_path, seed_source):
    from population.actor import PopulationActor

    ray = ray_session
    actor = PopulationActor.remote(str(tmp_path / "run"), seed_source, CONFIG)
    seed = ray.get(actor.seed.remote())
    kid, new = ray.get(actor.add.remote(seed_source + "# ray\n", [seed.id[:8]], "mutate", "via ray", 1))
    evaluations = ((seed, 1.0), (seed, 1.0004), (kid, 0.9))  # the seed's repeats measure sigma
    ray.get([actor.record.remote(g.id, ok(v), generation=1, **WHEN) for g, v in evaluations])
    assert new and ray.get(actor.genome.remote(kid.id[:9])) == kid
    assert {g.id for g in ray.get(actor.select_parents.remote(2, random.Random(0)))} == {kid.id, seed.id}
    with pytest.raises(UnknownGenome):
        ray.get(actor.genome.remote("fff0000"))
    ray.get(actor.close.remote())
    ray.kill(actor)
    with Population.open(tmp_path / "run", None, CONFIG) as pop:
        assert len(pop.archive()) == 3 and pop.genome(kid.id) == kid and pop.best() == kid


def test_benchmark_runs_at_tiny_size(tmp_path):
    from benchmarks.population_bench import main

    main(["--children", "50", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "population.json").read_text())
    assert {"platform", "cpu_count", "python", "date"} <= set(report["machine"])
    assert [w["children"] for w in report["windows"]] == [10, 50]
    for window in report["windows"]:
        assert all(window[k] > 0 for k in ("git_ms", "archive_ms", "total_ms", "p95_total_ms"))
    assert report["reopen_s"] > 0 and (tmp_path / "population.png").stat().st_size > 1000
