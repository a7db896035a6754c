"""What the run prints (evolve/progress.py, evolve/session.py): the status line, the ETA, plain words."""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass

import pytest

from evolve.progress import Progress, duration, eta_seconds, noise_note
from evolve.session import mutators_text, planned_seconds, plural
from experiments.profiles import load
from mutators import MutatorConfig, Mutators


@dataclass
class _Task:
    genome_id: str = "1a2b3c4d5e"
    kind: str = "child"
    seed: int = 0
    description: str = "LR 0.02 -> 0.03"
    operator: str = "hyperparam"


def _status(**changes) -> dict:
    status = dict(
        children_done=3, target=8, running=1, queued=2, generation="generation 2/2", llm_cost=0.0,
        elapsed=600.0, slots=1, busy=480.0, evaluations=6, session_children=3,
    )  # fmt: skip
    return {**status, **changes}


@pytest.fixture(scope="module")
def population(ray_session, tmp_path_factory, seed_source):
    """A real PopulationActor on a fresh run (the seed only), as the run's Progress talks to it."""
    from population import PopulationConfig
    from population.actor import PopulationActor

    run_dir = tmp_path_factory.mktemp("progress") / "run"
    return PopulationActor.remote(str(run_dir), seed_source, PopulationConfig(population_size=2))


def test_a_started_evaluation_names_itself_and_counts_itself_running(population):
    out = io.StringIO()
    Progress(population, "slot", out).started(_Task(), _status())
    first, second = out.getvalue().splitlines()
    assert first.endswith("training child 1a2b3c4 hyperparam: LR 0.02 -> 0.03")
    assert "children 3/8 done, 1 running, 2 queued (generation 2/2)" in second
    assert "about" in second and "left" in second


def test_noise_evaluations_say_they_measure_the_noise(population):
    out = io.StringIO()
    Progress(population, "slot", out).started(_Task(kind="noise", seed=2), _status())
    assert out.getvalue().splitlines()[0].endswith("training noise 1a2b3c4 (seed 2): measuring the noise level")


def test_eta_is_children_left_times_seconds_per_evaluation_over_slots():
    # 480 s busy over 6 finished evaluations and one half done: 73.8 s each; 5 children left on 1 slot
    assert eta_seconds(_status()) == pytest.approx(5 * 480 / 6.5)
    assert eta_seconds(_status(slots=4)) == pytest.approx(5 * 480 / 6.5 / 4)
    assert eta_seconds(_status(evaluations=0)) is None


def test_the_planned_time_of_the_headline_command_on_one_cpu_slot_is_most_of_a_day():
    hours = planned_seconds(800 + 3, budget=60, overhead=None, slots=1) / 3600
    assert 15 < hours < 20
    assert duration(hours * 3600) == f"{hours:.1f} h"
    assert duration(25 * 60) == "25 min" and duration(20) == "under a minute"


def test_counts_and_mutators_are_in_words():
    assert plural(1, "trainer worker") == "1 trainer worker"
    assert plural(2, "trainer worker") == "2 trainer workers"
    offline = Mutators(MutatorConfig(mode="offline"), api_key_from_env=False)
    assert mutators_text(offline) == "offline (hyperparam, merge)"
    auto = Mutators(MutatorConfig(mode="auto"), api_key_from_env=False)
    assert mutators_text(auto) == "offline (hyperparam, merge); no ANTHROPIC_API_KEY"
    llm = Mutators(MutatorConfig(mode="llm:0.7,offline:0.3"), api_key="sk-test-dummy")
    assert mutators_text(llm) == "LLM claude-sonnet-5-5 and offline"
    assert "Mutators(" not in mutators_text(llm)


def test_noise_far_above_the_profiles_names_the_likely_cause():
    note = noise_note(0.25, load("cpu"), "slot")
    assert note.startswith("noise σ 0.2500 is 62x what the cpu profile expects (0.004): likely other work")
    assert "GPUs shared" in noise_note(0.01, dataclasses.replace(load("h100"), noise_sigma=0.001), "GPU")


def test_noise_near_the_profiles_or_unknown_says_nothing():
    assert noise_note(0.006, load("cpu"), "slot") == ""
    assert noise_note(None, load("cpu"), "slot") == ""
    assert noise_note(0.25, dataclasses.replace(load("cpu"), noise_sigma=0.0), "slot") == ""


def test_run_says_so_once():
    stream = io.StringIO()
    progress = Progress(None, "slot", stream=stream, profile=load("cpu"))
    for sigma in (0.003, 0.25, 0.3):
        progress._tell_noise(sigma)
    assert stream.getvalue().count("noise σ") == 1 and "0.2500" in stream.getvalue()
