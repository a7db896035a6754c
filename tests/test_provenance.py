"""evolve.provenance: the recorded environment of a run, and how a replay's environment differs from it."""

from __future__ import annotations

import json
import shutil

from conftest import REPO

from evolve import provenance
from fitness import data


def test_harness_hash_changes_with_any_harness_source_and_not_with_the_seed(tmp_path):
    for package in ("fitness", "trainer"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    before = provenance.harness_hash(tmp_path)
    assert before == provenance.harness_hash(REPO)
    (tmp_path / "trainer" / "seeds" / "train.py").write_text("# a different seed\n")
    assert provenance.harness_hash(tmp_path) == before
    scoring = tmp_path / "fitness" / "scoring.py"
    scoring.write_text(scoring.read_text() + "\n# changed\n")
    assert provenance.harness_hash(tmp_path) != before


def test_environment_is_json_and_names_the_prepared_data(tiny_profile):
    env = provenance.environment(tiny_profile)
    assert json.loads(json.dumps(env)) == env
    cache = data.TokenCache.at(tiny_profile.dataset, tiny_profile.vocab_size)
    assert env["data"] == cache.identity() and env["data"]["tokenizer_sha"]
    assert env["packages"]["torch"] and env["cores"] >= 1 and env["python"].count(".") == 2
    assert provenance.differences(env, env) == []


def test_differences_name_hardware_versions_and_harness_in_one_line_each():
    recorded = {
        "harness_hash": "a" * 64,
        "data": {"tokenizer_sha": "t1", "val_sha": "v1"},
        "packages": {"torch": "2.13.0", "numpy": "2.1.0"},
        "gpu": "NVIDIA H100 80GB HBM3",
        "gpu_count": 1,
        "cuda": "12.8",
        "cpu": "Intel Xeon",
        "cores": 16,
    }
    current = {
        **recorded,
        "harness_hash": "b" * 64,
        "data": {"tokenizer_sha": "t1", "val_sha": "v2"},
        "packages": {"torch": "2.4.1", "numpy": "2.1.0"},
        "gpu": None,
        "gpu_count": 0,
        "cuda": None,
        "cores": 2,
    }
    notes = provenance.differences(recorded, current)
    assert notes == [
        "harness hash differs (aaaaaaaaaaaa -> bbbbbbbbbbbb): scores are not comparable",
        "data val_sha differs (v1 -> v2): scores are not comparable",
        "GPU: recorded NVIDIA H100 80GB HBM3, now no GPU",
        "CUDA 12.8 -> none",
        "CPU: recorded Intel Xeon (16 cores), now Intel Xeon (2 cores)",
        "torch 2.13.0 -> 2.4.1",
    ]


def test_differences_skip_what_either_side_did_not_record():
    assert provenance.differences({"gpu": "A100"}, {"hostname": "box"}) == []
