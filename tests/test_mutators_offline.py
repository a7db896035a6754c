"""Offline operators: hyperparameter mutation through the AST and the 3-way merge crossover."""

from __future__ import annotations

import difflib
import random

import pytest

from fitness.interface import check_genome
from mutators import Context, MutatorConfig, Mutators, ParentInfo
from mutators.merge import merge, three_way
from mutators.offline import consistent, find_knobs, hyperparam, perturb, rewrite

CONTEXT = Context(program="p", profile="smoke")


@pytest.fixture
def offline() -> Mutators:
    return Mutators(MutatorConfig(mode="offline"), api_key_from_env=False)


def _changed_lines(old: str, new: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]


@pytest.mark.parametrize("profile", ["smoke", "h100"])
def test_hyperparam_gives_100_valid_distinct_children_of_the_seed(offline, seed_source, profile):
    rng, seen = random.Random(1), set()
    parent = ParentInfo("seed", seed_source)
    for _ in range(100):
        proposal = offline.propose(
            "hyperparam", [parent], None, Context(program="p", profile=profile), rng, seen.__contains__
        )
        assert proposal.ok, proposal.reason
        draft = proposal.draft
        assert check_genome(draft.source) is None
        assert draft.source != seed_source and draft.source not in seen
        assert draft.operator == "hyperparam" and draft.parent_ids == ("seed",) and draft.usage is None
        seen.add(draft.source)


def test_hyperparam_rewrites_only_the_literal_and_keeps_comments(seed_source):
    rng = random.Random(7)
    for _ in range(30):
        draft = hyperparam(ParentInfo("seed", seed_source), "cpu", rng, None).draft
        changed = _changed_lines(seed_source, draft.source)
        assert 2 <= len(changed) <= 4  # one or two knob lines, each removed and added
        removed = {(line[1:].split("=")[0], line.split("#")[1]) for line in changed if line[0] == "-"}
        added = {(line[1:].split("=")[0], line.split("#")[1]) for line in changed if line[0] == "+"}
        assert removed == added  # same names, trailing comments untouched


def test_hyperparam_description_states_exactly_what_changed(seed_source):
    draft = hyperparam(ParentInfo("seed", seed_source), "smoke", random.Random(3), None).draft
    after = {k.name: k.value for k in find_knobs(draft.source, "smoke")}
    before = {k.name: k.value for k in find_knobs(seed_source, "smoke")}
    expected = tuple(f"{name} {before[name]!r} -> {after[name]!r}" for name in before if before[name] != after[name])
    assert draft.changes == expected
    assert draft.description == ", ".join(expected)


def test_per_profile_knob_changes_only_the_current_profile_entry(seed_source):
    knob = next(k for k in find_knobs(seed_source, "cpu") if k.base_name == "DEPTH")
    child = rewrite(seed_source, [(knob, 6)])
    assert 'DEPTH = {"h100": 8, "cpu": 6, "smoke": 2}[PROFILE]  # transformer blocks' in child


def test_perturb_keeps_types_and_valid_ranges():
    rng = random.Random(0)
    for _ in range(2000):
        assert perturb("WARMDOWN_FRAC", 0.9, rng) <= 1.0
        assert 0.0 < perturb("WARMUP_FRAC", 0.0, rng) <= 1.0
        assert 0.0 < perturb("ADAM_BETA2", 0.95, rng) < 1.0
        assert perturb("MATRIX_LR", 0.02, rng) > 0.0
        depth = perturb("DEPTH", 3, rng)
        assert isinstance(depth, int) and depth >= 1
        assert perturb("GRAD_ACCUM_STEPS", 1, rng) == 2
        assert perturb("MODEL_DIM", 64, rng) in (32, 128)
        assert isinstance(perturb("LOGIT_SOFTCAP", 15.0, rng), float)


def test_consistency_rule_rejects_model_dim_not_divisible_by_head_dim(seed_source):
    values = {k.base_name: k.value for k in find_knobs(seed_source, "smoke")}
    assert consistent(values) is None
    assert "not divisible" in consistent(values | {"MODEL_DIM": 48})
    assert "odd" in consistent(values | {"HEAD_DIM": 15, "MODEL_DIM": 45})


def test_knob_literals_found_after_non_ascii_text_on_the_line():
    source = 'X = {"cpu": 2, "smoke": 3}[PROFILE]  # déjà\nLR = 0.1  # größe\n'
    knobs = find_knobs('N = "αβ"; ' + source, "cpu")
    assert [(k.name, k.value) for k in knobs] == [("X[cpu]", 2), ("LR", 0.1)]
    assert rewrite(source, [(find_knobs(source, "cpu")[1], 0.2)]).endswith("LR = 0.2  # größe\n")


def test_hyperparam_is_reproducible_from_the_rng_seed(seed_source):
    parent = ParentInfo("seed", seed_source)
    first = hyperparam(parent, "smoke", random.Random(42), None).draft
    assert hyperparam(parent, "smoke", random.Random(42), None).draft == first


def test_merge_combines_changes_to_different_knobs(seed_source):
    a = seed_source.replace("MATRIX_LR = 0.02", "MATRIX_LR = 0.03")
    b = seed_source.replace("NS_STEPS = 5", "NS_STEPS = 4")
    proposal = merge(ParentInfo("a", a, "faster lr"), ParentInfo("b", b, "fewer NS steps"), seed_source, None)
    assert proposal.ok
    assert "MATRIX_LR = 0.03" in proposal.draft.source and "NS_STEPS = 4" in proposal.draft.source
    assert proposal.draft.parent_ids == ("a", "b") and proposal.draft.operator == "merge"
    assert proposal.draft.description == "merge: faster lr + fewer NS steps"


def test_conflicting_merge_is_a_conflict_status_not_a_child(offline, seed_source):
    a = ParentInfo("a", seed_source.replace("MATRIX_LR = 0.02", "MATRIX_LR = 0.03"))
    b = ParentInfo("b", seed_source.replace("MATRIX_LR = 0.02", "MATRIX_LR = 0.01"))
    proposal = offline.propose("merge", [a, b], seed_source, CONTEXT, random.Random(0))
    assert proposal.status == "conflict" and proposal.draft is None
    assert "1 conflicting hunk" in proposal.reason
    assert three_way(seed_source, a.source, b.source)[1] == 1


def test_merge_equal_to_a_parent_is_unchanged(seed_source):
    b = ParentInfo("b", seed_source.replace("NS_STEPS = 5", "NS_STEPS = 4"))
    proposal = merge(ParentInfo("a", seed_source), b, seed_source, None)
    assert proposal.status == "unchanged"


def test_merge_without_ancestor_is_refused(seed_source):
    proposal = merge(ParentInfo("a", seed_source), ParentInfo("b", seed_source), None, None)
    assert proposal.status == "conflict" and "ancestor" in proposal.reason


def test_llm_operator_in_offline_mode_is_unavailable(offline, seed_source):
    parent = ParentInfo("seed", seed_source)
    assert offline.propose("mutate", [parent], None, CONTEXT, random.Random(0)).status == "unavailable"
    assert offline.repair(parent, "Traceback", CONTEXT).status == "unavailable"
