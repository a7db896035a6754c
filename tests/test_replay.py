"""`python -m evolve replay`: the seed trained again as recorded reproduces its val_bpb within the measured noise.

The tolerance, honestly: the run's noise sigma comes from three seed evaluations (seeds 0, 1, 2; 2 degrees
of freedom), and the replayed mean of two is compared with the recorded mean of three, a difference
0.91 sigma wide. We accept |difference| <= max(6 sigma, FLOOR): t = 6.6 on 2 dof leaves about 2% for an
honest replay under a wall-clock budget, where the machine's speed changes the steps done; FLOOR covers
repeats that happened to agree closely. A replay that load pushes over its time limit (over_budget,
timeout) says nothing about reproduction, so it is run again, as tests/smoke_run.py does.

The smoke run trains to a token budget on one thread (tests/smoke_run.steady), where the machine's speed
no longer changes the work done: there a replay must also equal, bit for bit, the evaluation it redoes.
"""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest
from run_helpers import evolve
from smoke_run import TIMING_TRIES

from evolve import provenance
from evolve.replay import environment_notes, replay_profile
from population import Population, PopulationConfig

# The session's smoke run (tests/conftest.py) is built by whichever test asks first: ~1.5 min, more on a
# loaded machine, so these tests get more than the default 300 s.
pytestmark = pytest.mark.timeout(900)

SIGMAS = 6.0  # the difference of a 2-mean and a 3-mean is 0.91 σ wide: 6 σ is t = 6.6 on 2 dof
FLOOR = 0.02  # bpb


@pytest.mark.slow
def test_replay_of_the_seed_reproduces_its_val_bpb_within_the_noise_repeats_measure(smoke_run, tmp_path, tiny_profile):
    run_dir = smoke_run.copy(tmp_path / "run")
    seed = smoke_run.seed
    with Population.read(run_dir) as pop:
        before = pop.archive()
    recorded = before[(before.genome_id == seed.id) & (before.status == "ok")]
    assert len(recorded) >= 2, "the smoke run measures noise with repeated ok seed evaluations"
    for _ in range(TIMING_TRIES):  # as in tests/smoke_run.py: a loaded machine may push a replay over time
        proc = evolve("replay", "seed", "--run-dir", str(run_dir), "--repeats", "2")
        if proc.returncode == 0:
            break
        assert "over_budget" in proc.stdout or "timeout" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with Population.read(run_dir) as pop:
        new_rows = pop.archive().iloc[len(before) :]
    assert set(new_rows.kind) == {"replay"} and set(new_rows.genome_id) == {seed.id}
    first = recorded.iloc[0]
    for column in ("seed", "profile", "budget_seconds", "generation"):
        assert (new_rows[column] == first[column]).all(), column
    replays = new_rows.iloc[-2:]  # the invocation that finished ok
    assert list(replays.status) == ["ok", "ok"]
    diff = replays.val_bpb.mean() - recorded.val_bpb.mean()
    sigma = _pooled_sigma(new_rows.iloc[:-2], before)  # what the run knew when this replay started
    assert f"replayed  {replays.val_bpb.mean():.4f}" in proc.stdout
    printed = re.search(r"^difference ([-+]\d+\.\d+) = ([-+]\d+\.\d+)σ \(σ (\d+\.\d+)", proc.stdout, re.M)
    assert printed, proc.stdout
    assert abs(float(printed[1]) - diff) < 1e-4 and abs(float(printed[3]) - sigma) < 1e-4
    assert abs(float(printed[2]) - diff / sigma) < 0.01
    recorded_env = json.loads((run_dir / "run.json").read_text())["environment"]
    differences = provenance.differences(recorded_env, provenance.environment(tiny_profile))
    for note in differences or ["same hardware and software as recorded"]:  # differs if the harness was edited
        assert f"note: environment: {note}" in proc.stdout
    assert abs(diff) <= max(SIGMAS * sigma, FLOOR), proc.stdout
    # Stronger, because the smoke run trains to a token budget on one thread: the same seed, the same score.
    assert (replays.val_bpb - first.val_bpb).abs().max() < 1e-9, (list(replays.val_bpb), first.val_bpb)


def _pooled_sigma(*frames: pd.DataFrame) -> float:
    """The pooled within-genome std of ok val_bpb (what Population.noise_sigma measures), computed here."""
    rows = pd.concat(frames)
    values = rows[rows.status == "ok"].groupby("genome_id").val_bpb
    dof = (values.count() - 1).clip(lower=0).sum()
    return math.sqrt(values.var(ddof=0).mul(values.count()).sum() / dof)


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
