"""`python -m evolve replay`: the seed trained again as recorded reproduces its val_bpb within the measured noise.

The tolerance, honestly: a replay trains for the same wall-clock budget, so it takes as many steps as
the machine allows at that moment. On a shared 2-core machine that, not the code, dominates the
difference, and the noise repeats measure exactly that spread, but from three evaluations only
(2 degrees of freedom). We accept |replayed mean - recorded mean| <= max(5 σ, FLOOR): 5 σ leaves a
Student-t(2) tail of about 2% for an honest replay; FLOOR covers a run whose three repeats happened to
agree closely.
"""

from __future__ import annotations

import pandas as pd
import pytest
from smoke_run import evolve

from evolve import provenance
from evolve.replay import environment_notes, replay_profile
from population import Population, PopulationConfig

SIGMAS = 5.0
FLOOR = 0.1  # bpb


@pytest.mark.slow
def test_replay_of_the_seed_reproduces_its_val_bpb_within_the_noise_repeats_measure(smoke_run, tmp_path):
    run_dir = smoke_run.copy(tmp_path / "run")
    seed = smoke_run.seed
    with Population.read(run_dir) as pop:
        sigma, before = pop.noise_sigma(), pop.archive()
    recorded = before[(before.genome_id == seed.id) & (before.status == "ok")]
    proc = evolve("replay", "seed", "--run-dir", str(run_dir), "--repeats", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with Population.read(run_dir) as pop:
        replays = pop.archive().iloc[len(before) :]
    assert list(replays.kind) == ["replay", "replay"] and set(replays.genome_id) == {seed.id}
    assert list(replays.status) == ["ok", "ok"]
    first = recorded.iloc[0]
    for column in ("seed", "profile", "budget_seconds", "generation"):
        assert (replays[column] == first[column]).all(), column
    diff = replays.val_bpb.mean() - recorded.val_bpb.mean()
    assert f"replayed  {replays.val_bpb.mean():.4f}" in proc.stdout
    assert f"difference {diff:+.4f} = {diff / sigma:+.2f}σ" in proc.stdout
    assert "note: environment: same hardware and software as recorded" in proc.stdout
    assert abs(diff) <= max(SIGMAS * sigma, FLOOR), proc.stdout


def test_replay_names_every_way_this_machine_differs_from_the_recording(tiny_profile):
    current = provenance.environment(tiny_profile)
    recorded = {
        **current,
        "gpu": "NVIDIA H100 80GB HBM3",
        "gpu_count": 1,
        "packages": {**current["packages"], "torch": "2.4.1"},
    }
    notes = environment_notes({"environment": recorded}, tiny_profile)
    assert notes == [
        "environment: GPU: recorded NVIDIA H100 80GB HBM3, now no GPU",
        f"environment: torch 2.4.1 -> {current['packages']['torch']}",
    ]
    assert environment_notes({}, tiny_profile) == [
        "run.json records no environment: cannot say whether this machine differs"
    ]


def test_replay_profile_is_the_recorded_one_unless_another_is_named(tiny_profile):
    record = {"profile": tiny_profile.to_dict()}
    row = pd.Series({"eval_id": 3, "profile": "smoke", "budget_seconds": 2.0})
    assert replay_profile(record, row, None) == (tiny_profile, [])
    assert replay_profile(record, row, "smoke") == (tiny_profile, [])
    profile, notes = replay_profile(record, row, "cpu")
    assert profile.name == "cpu" and notes == [
        "replaying under profile 'cpu', recorded under 'smoke': scores are not comparable"
    ]
    profile, notes = replay_profile({}, row, None)
    assert profile.name == "smoke" and profile.budget_seconds == 2.0 and "run.json has no profile" in notes[0]


def test_replay_of_a_genome_never_evaluated_is_refused(smoke_run, tmp_path, seed_source):
    run_dir = smoke_run.copy(tmp_path / "run")
    with Population.open(run_dir, None, PopulationConfig(population_size=4, confirm_repeats=2)) as pop:
        genome, _ = pop.add(seed_source + "\n# queued\n", [pop.seed().id], "mutate", "queued", 3)
    proc = evolve("replay", genome.id[:12], "--run-dir", str(run_dir))
    assert proc.returncode == 2 and proc.stderr.strip() == (
        f"evolve: error: genome {genome.short_id} has no recorded evaluation to replay"
    )
