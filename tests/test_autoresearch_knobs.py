"""Offline operators on autoresearch-style knobs: tuples, powers of two, trailing comments."""

from __future__ import annotations

import random
from pathlib import Path

from fitness.interface import check_genome
from mutators.messages import ParentInfo
from mutators.offline import find_knobs, hyperparam, rewrite

GENOME = (Path(__file__).parent / "genomes" / "autoresearch_cpu.py").read_text()


def test_tuple_entries_and_powers_of_two_are_knobs():
    knobs = {k.name: k for k in find_knobs(GENOME, "smoke")}
    assert knobs["ADAM_BETAS[0]"].value == 0.8 and knobs["ADAM_BETAS[1]"].value == 0.95
    assert knobs["TOTAL_BATCH_SIZE"].value == 2**10 and knobs["TOTAL_BATCH_SIZE"].power
    assert {"DEPTH", "HEAD_DIM", "MATRIX_LR", "WARMDOWN_RATIO"} <= set(knobs)
    assert "WINDOW_PATTERN" not in knobs  # a string is not a number


def test_rewriting_a_tuple_entry_and_a_power_keeps_their_spelling_and_comments():
    source = "ADAM_BETAS = (0.8, 0.95)  # beta1, beta2\nTOTAL_BATCH_SIZE = 2**19  # tokens per step\n"
    beta2, total = find_knobs(source, "cpu")[1:]
    assert rewrite(source, [(beta2, 0.99), (total, 2**18)]) == (
        "ADAM_BETAS = (0.8, 0.99)  # beta1, beta2\nTOTAL_BATCH_SIZE = 2**18  # tokens per step\n"
    )


def test_hyperparam_mutates_an_autoresearch_script_into_valid_children():
    rng, seen = random.Random(0), set()
    for _ in range(30):
        proposal = hyperparam(ParentInfo(id="p", source=GENOME), "smoke", rng, None)
        assert proposal.status == "ok", proposal.reason
        assert check_genome(proposal.draft.source) is None
        seen.update(line.split()[0] for line in proposal.draft.changes)
    assert {"ADAM_BETAS[0]", "ADAM_BETAS[1]", "TOTAL_BATCH_SIZE"} & seen
    powers = [k.value for k in find_knobs(proposal.draft.source, "smoke") if k.name == "TOTAL_BATCH_SIZE"]
    assert powers and powers[0] & (powers[0] - 1) == 0
