"""The run's printed progress: the one warning when the measured noise is far above the profile's."""

from __future__ import annotations

import dataclasses
import io

from evolve.progress import Progress, noise_note
from experiments.profiles import load


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
