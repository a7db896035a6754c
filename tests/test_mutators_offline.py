"""Offline operators: hyperparameter mutation through the AST and the 3-way merge crossover."""

from __future__ import annotations

import dataclasses
import difflib
import random
import subprocess
from pathlib import Path

import pytest

from fitness.interface import check_genome
from mutators import Context, MutatorConfig, Mutators, ParentInfo
from mutators.knobmerge import knob_three_way, merge_values
from mutators.merge import merge, three_way
from mutators.offline import consistent, find_knobs, hyperparam, perturb, rewrite
from population import Population, PopulationConfig

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
    proposal = merge(ParentInfo("a", a, "faster lr"), ParentInfo("b", b, "fewer NS steps"), seed_source, None, "cpu")
    assert proposal.ok
    assert "MATRIX_LR = 0.03" in proposal.draft.source and "NS_STEPS = 4" in proposal.draft.source
    assert proposal.draft.parent_ids == ("a", "b") and proposal.draft.operator == "merge"
    assert proposal.draft.description == "merge: faster lr + fewer NS steps"
    assert "MATRIX_LR 0.02 -> 0.03 (from a)" in proposal.draft.changes


def test_knob_values_merge_by_name_and_a_clash_goes_to_the_first():
    base, first, second = (
        {"A": 1, "B": 2, "C": 3, "D": 4},
        {"A": 5, "B": 2, "C": 7, "D": 8},
        {"A": 1, "B": 6, "C": 9, "D": 8},
    )
    assert merge_values(base, first, second) == ({"A": 5, "B": 6, "C": 7, "D": 8}, ("C",))


def test_changes_to_adjacent_knob_lines_merge_cleanly(tmp_path, seed_source):
    a = ParentInfo("a", seed_source.replace("MATRIX_LR = 0.02", "MATRIX_LR = 0.03"), "faster lr")
    b = ParentInfo("b", seed_source.replace("EMBED_LR = 0.3", "EMBED_LR = 0.2"), "slower embedding lr")
    assert three_way(seed_source, a.source, b.source)[1] == 1  # what git merge-file alone makes of it
    proposal = merge(a, b, seed_source, None, "cpu")
    assert proposal.ok, proposal.reason
    assert _changed_lines(seed_source, proposal.draft.source) == [
        "-MATRIX_LR = 0.02  # Muon learning rate for 2-D weight matrices",
        "-EMBED_LR = 0.3  # AdamW learning rate for the token embedding",
        "+MATRIX_LR = 0.03  # Muon learning rate for 2-D weight matrices",
        "+EMBED_LR = 0.2  # AdamW learning rate for the token embedding",
    ]
    with Population.open(tmp_path / "run", seed_source, PopulationConfig()) as pop:
        ga, _ = pop.add(a.source, [pop.seed().id], "hyperparam", a.description, 1)
        gb, _ = pop.add(b.source, [pop.seed().id], "hyperparam", b.description, 1)
        draft = merge(ParentInfo(ga.id, ga.source), ParentInfo(gb.id, gb.source), seed_source, None, "cpu").draft
        child, _ = pop.add(draft.source, draft.parent_ids, "merge", draft.description, 2)
        log = subprocess.run(["git", "log", "-1", "--format=%P", child.id], cwd=pop.run_dir, capture_output=True)
    assert log.stdout.decode().split() == [ga.id, gb.id]  # the child is a merge commit of both parents


def test_same_knob_changed_differently_keeps_the_fitter_parents_value(offline, seed_source):
    a = ParentInfo("a", seed_source.replace("MATRIX_LR = 0.02", "MATRIX_LR = 0.03"), "up", val_bpb=1.50)
    b = ParentInfo("b", seed_source.replace("MATRIX_LR = 0.02", "MATRIX_LR = 0.01"), "down", val_bpb=1.40)
    b = ParentInfo("b", b.source.replace("NS_STEPS = 5", "NS_STEPS = 4"), "down", val_bpb=1.40)
    proposal = offline.propose("merge", [a, b], seed_source, CONTEXT, random.Random(0))
    assert proposal.status == "unchanged"  # b's values win both knobs: the child would be b itself
    a = ParentInfo("a", a.source.replace("WARMDOWN_FRAC = 0.5", "WARMDOWN_FRAC = 0.6"), "up", val_bpb=1.50)
    draft = offline.propose("merge", [a, b], seed_source, CONTEXT, random.Random(0)).draft
    assert (
        "MATRIX_LR = 0.01" in draft.source and "NS_STEPS = 4" in draft.source and "WARMDOWN_FRAC = 0.6" in draft.source
    )
    assert "MATRIX_LR: both parents changed it; kept b's (the fitter)" in draft.changes
    unscored = merge(
        dataclasses.replace(a, val_bpb=None), dataclasses.replace(b, val_bpb=None), seed_source, None, "cpu"
    )
    assert "MATRIX_LR = 0.03" in unscored.draft.source  # neither scored: the first parent's value


def test_code_and_knob_changes_merge_together_and_code_conflicts_stay_conflicts(offline, seed_source):
    relu = "self.down(F.relu(self.up(x)).square())"
    a = seed_source.replace(relu, "self.down(F.gelu(self.up(x)))").replace("MATRIX_LR = 0.02", "MATRIX_LR = 0.03")
    b = seed_source.replace("EMBED_LR = 0.3", "EMBED_LR = 0.2").replace("NS_STEPS = 5", "NS_STEPS = 4")
    b = b.replace("MATRIX_LR = 0.02  # Muon learning rate", "MATRIX_LR = 0.02  # the Muon learning rate")
    draft = merge(ParentInfo("a", a), ParentInfo("b", b), seed_source, None, "cpu").draft
    assert check_genome(draft.source) is None
    assert "F.gelu(self.up(x))" in draft.source and "EMBED_LR = 0.2" in draft.source and "NS_STEPS = 4" in draft.source
    assert "MATRIX_LR = 0.03  # the Muon learning rate" in draft.source  # a's value on b's rewritten line
    c = seed_source.replace(relu, "self.down(F.silu(self.up(x)))")
    proposal = offline.propose(
        "merge", [ParentInfo("a", a), ParentInfo("c", c)], seed_source, CONTEXT, random.Random(0)
    )
    assert proposal.status == "conflict" and "1 conflicting hunk" in proposal.reason


def test_autoresearch_tuple_and_power_knobs_merge_by_entry_keeping_their_spelling():
    genome = (Path(__file__).parent / "genomes" / "autoresearch_cpu.py").read_text()
    a = genome.replace("ADAM_BETAS = (0.8, 0.95)", "ADAM_BETAS = (0.9, 0.95)").replace("2**10", "2**11")
    b = genome.replace("ADAM_BETAS = (0.8, 0.95)", "ADAM_BETAS = (0.8, 0.99)")
    b = b.replace("DEVICE_BATCH_SIZE = 8  #", "DEVICE_BATCH_SIZE = 16  #")
    done = knob_three_way(genome, a, b, "cpu")
    assert done.conflicts == 0 and three_way(genome, a, b)[1] == 1
    assert "ADAM_BETAS = (0.9, 0.99)  # AdamW beta1, beta2\n" in done.source
    assert "TOTAL_BATCH_SIZE = 2**11  # tokens per optimizer step\n" in done.source
    assert "DEVICE_BATCH_SIZE = 16  # rows per forward pass\n" in done.source
    added = [line for line in _changed_lines(genome, done.source) if line[0] == "+"]
    assert added == [
        "+DEVICE_BATCH_SIZE = 16  # rows per forward pass",
        "+TOTAL_BATCH_SIZE = 2**11  # tokens per optimizer step",
        "+ADAM_BETAS = (0.9, 0.99)  # AdamW beta1, beta2",
    ]
    assert done.changes == ("DEVICE_BATCH_SIZE 8 -> 16 (from b)", "TOTAL_BATCH_SIZE 1024 -> 2048 (from a)",
                            "ADAM_BETAS[0] 0.8 -> 0.9 (from a)", "ADAM_BETAS[1] 0.95 -> 0.99 (from b)")  # fmt: skip


def test_transplant_brings_the_donors_knob_changes_onto_the_best_and_nothing_else(offline, seed_source):
    relu = "self.down(F.relu(self.up(x)).square())"
    best = seed_source.replace("MATRIX_LR = 0.02", "MATRIX_LR = 0.03").replace("NS_STEPS = 5", "NS_STEPS = 4")
    donor = seed_source.replace("EMBED_LR = 0.3", "EMBED_LR = 0.2").replace("NS_STEPS = 5", "NS_STEPS = 6")
    donor = donor.replace(relu, "self.down(F.gelu(self.up(x)))")
    parents = [ParentInfo("best", best), ParentInfo("donor123", donor)]
    proposal = offline.propose("transplant", parents, seed_source, CONTEXT, random.Random(0))
    draft = proposal.draft
    assert proposal.ok and draft.operator == "transplant" and draft.parent_ids == ("best",)
    assert _changed_lines(best, draft.source) == [
        "-EMBED_LR = 0.3  # AdamW learning rate for the token embedding",
        "+EMBED_LR = 0.2  # AdamW learning rate for the token embedding",
    ]  # the best keeps NS_STEPS (both changed it) and the donor's code change stays behind
    assert draft.changes == ("EMBED_LR 0.3 -> 0.2 (from donor123)",)
    assert draft.description == "transplant from donor12: EMBED_LR 0.3 -> 0.2"
    again = offline.propose("transplant", [ParentInfo("b", draft.source), parents[1]], seed_source, CONTEXT, None)
    assert again.status == "unchanged"


def test_merge_equal_to_a_parent_is_unchanged(seed_source):
    b = ParentInfo("b", seed_source.replace("NS_STEPS = 5", "NS_STEPS = 4"))
    proposal = merge(ParentInfo("a", seed_source), b, seed_source, None, "cpu")
    assert proposal.status == "unchanged"


def test_merge_without_ancestor_is_refused(seed_source):
    proposal = merge(ParentInfo("a", seed_source), ParentInfo("b", seed_source), None, None, "cpu")
    assert proposal.status == "conflict" and "ancestor" in proposal.reason


def test_llm_operator_in_offline_mode_is_unavailable(offline, seed_source):
    parent = ParentInfo("seed", seed_source)
    assert offline.propose("mutate", [parent], None, CONTEXT, random.Random(0)).status == "unavailable"
    assert offline.repair(parent, "Traceback", CONTEXT).status == "unavailable"
