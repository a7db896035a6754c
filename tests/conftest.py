"""Shared fixtures: one local Ray per test session, a private cache directory, the seed genome, a warm scorer
process per module, a finished smoke run per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

REPO = Path(__file__).resolve().parents[1]
SEED_GENOME = REPO / "trainer" / "seeds" / "train.py"


@pytest.fixture(scope="session")
def seed_source() -> str:
    return SEED_GENOME.read_text()


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray with 4 fake GPUs, started once for the whole session (~3 s, ~1 GB)."""
    import ray

    from evolve.session import init_ray  # started again if its node misses Ray's start-up window under load

    if not ray.is_initialized():
        init_ray(address="local", num_cpus=2, num_gpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Every test session builds its own token cache, as a fresh machine would."""
    path = os.environ.get("EVOLVE_TEST_CACHE") or str(tmp_path_factory.mktemp("evolve-cache"))
    os.environ["EVOLVE_CACHE"] = path
    yield Path(path)


@pytest.fixture(autouse=True)
def seeded():
    """Every test draws the same random numbers on every run: a test that passes by luck of the draw would
    fail one landing in a hundred (one did: a shift measured on unseeded logits)."""
    import random

    import torch

    random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def scorer():
    """A warm scorer process (trainer.ScorerProcess) shared by a module's trainings, as a trainer worker's is."""
    from trainer import ScorerProcess

    process = ScorerProcess()
    yield process
    process.close()


@pytest.fixture(scope="session")
def tiny_profile():
    """The smoke profile cut down further: two seconds of training, a thousand scored tokens."""
    import dataclasses

    from experiments.profiles import load

    return dataclasses.replace(load("smoke"), budget_seconds=2.0, eval_tokens=1024, startup_allowance_s=40.0)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, tiny_profile, private_cache):
    """A finished run directory (tests/smoke_run.py), built once per session and shared by its xdist
    workers (in the directory above each worker's own): about a minute of training. Tests that write into
    a run copy it first (smoke_run.copy)."""
    from smoke_run import shared_smoke_run

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return shared_smoke_run(shared / "smoke-run", tiny_profile)
