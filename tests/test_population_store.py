"""The genome store: one git commit per genome, merges for crossovers, dedupe, id prefixes, plain git."""

from __future__ import annotations

import subprocess

import pytest

from population import (
    AmbiguousGenome,
    GenomeIdError,
    InvalidGenome,
    Population,
    PopulationConfig,
    RunDirError,
    UnknownGenome,
)

CREATED = "2025-01-02T03:04:05+00:00"


def variant(seed_source: str, i: int) -> str:
    return seed_source.replace("MLP_RATIO = 4 ", f"MLP_RATIO = {4 + i} ")


def git(run_dir, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=run_dir, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def pop(tmp_path, seed_source):
    with Population.open(tmp_path / "run", seed_source, PopulationConfig()) as p:
        yield p


def test_seed_is_the_root_commit(pop, seed_source):
    seed = pop.seed()
    assert seed.parents == () and seed.operator == "seed" and seed.source == seed_source
    assert git(pop.run_dir, "rev-list", "--max-parents=0", "--all").split() == [seed.id]


def test_mutation_child_has_one_parent_and_message_records_operator(pop, seed_source):
    child, new = pop.add(variant(seed_source, 1), [pop.seed().id], "mutate", "wider MLP", 1, created=CREATED)
    assert new and child.parents == (pop.seed().id,)
    assert git(pop.run_dir, "log", "-1", "--format=%P", child.id).split() == [pop.seed().id]
    assert git(pop.run_dir, "log", "-1", "--format=%s", child.id).strip() == "mutate: wider MLP"
    assert pop.genome(child.id) == child


def test_crossover_child_is_a_real_merge_commit(pop, seed_source):
    a, _ = pop.add(variant(seed_source, 1), [pop.seed().id], "mutate", "a", 1)
    b, _ = pop.add(variant(seed_source, 2), [pop.seed().id], "mutate", "b", 1)
    c, _ = pop.add(variant(seed_source, 3), [a.id, b.id], "crossover", "a x b", 2)
    assert git(pop.run_dir, "log", "-1", "--format=%P", c.id).split() == [a.id, b.id]
    assert pop.merge_base(a.id, b.id) == pop.seed()
    assert pop.merge_base(c.id, a.id) == a


def test_identical_source_is_a_duplicate_without_a_new_commit(pop, seed_source):
    first, new = pop.add(variant(seed_source, 1), [pop.seed().id], "mutate", "x", 1)
    again, again_new = pop.add(variant(seed_source, 1).replace("\n", "\r\n"), [first.id], "repair", "y", 2)
    assert new and not again_new and again == first
    assert pop.add(seed_source, [first.id], "mutate", "undo", 2) == (pop.seed(), False)
    assert len(git(pop.run_dir, "rev-list", "--all").split()) == 2


def test_invalid_source_is_refused_before_commit(pop):
    with pytest.raises(InvalidGenome, match="harness"):
        pop.add("print('hello')\n", [pop.seed().id], "mutate", "broken", 1)
    assert pop.summary().genomes == 1


def test_unknown_and_ambiguous_prefixes_raise_one_line_errors(pop, seed_source):
    ids = [pop.add(variant(seed_source, i), [pop.seed().id], "mutate", str(i), 1)[0].id for i in range(1, 18)]
    firsts = [i[0] for i in ids + [pop.seed().id]]
    shared = next(c for c in firsts if firsts.count(c) > 1)  # 18 ids, 16 hex digits: two must share one
    with pytest.raises(AmbiguousGenome, match=f"'{shared}'") as ambiguous:
        pop.genome(shared)
    with pytest.raises(UnknownGenome, match="'zz9'") as unknown:
        pop.genome("zz9")
    assert isinstance(ambiguous.value, GenomeIdError) and isinstance(unknown.value, LookupError)
    assert "\n" not in str(ambiguous.value) + str(unknown.value)
    assert pop.genome(ids[0][:12].upper()).id == ids[0]


def test_plain_git_log_diff_and_show_work_in_the_run_dir(pop, seed_source):
    child, _ = pop.add(variant(seed_source, 1), [pop.seed().id], "mutate", "wider MLP", 1)
    assert "mutate: wider MLP" in git(pop.run_dir, "log", "--graph", "--all", "--oneline")
    assert "+MLP_RATIO = 5" in git(pop.run_dir, "diff", pop.seed().id[:8], child.id[:8])
    assert git(pop.run_dir, "show", f"{child.id}:train.py") == child.source
    assert "seed: seed genome" in git(pop.run_dir, "log", "--oneline")  # HEAD follows the best


def test_a_directory_that_is_not_a_run_is_refused(tmp_path, seed_source):
    (tmp_path / "plain").mkdir()
    with pytest.raises(RunDirError, match="no seed source"):
        Population.open(tmp_path / "plain", None, PopulationConfig())
    subprocess.run(["git", "init", "-q", str(tmp_path / "other")], check=True)
    with pytest.raises(RunDirError, match="not an evolve run"):
        Population.open(tmp_path / "other", seed_source, PopulationConfig())


def test_a_second_writer_is_refused(pop, seed_source):
    with pytest.raises(RunDirError, match="open in another process"):
        Population.open(pop.run_dir, seed_source, PopulationConfig())


def test_a_childs_changes_are_a_field_of_the_genome_and_survive_reopening(tmp_path, seed_source):
    changes = ("MATRIX_LR 0.02 -> 0.03", "DEPTH 4 -> 6")
    with Population.open(tmp_path / "run", seed_source, PopulationConfig(population_size=2)) as pop:
        kid, _ = pop.add(seed_source + "# x\n", [pop.seed().id], "hyperparam", "two knobs", 1, changes=changes)
        assert kid.changes == changes and "changes" not in kid.meta
    with Population.open(tmp_path / "run", None, PopulationConfig(population_size=2)) as pop:
        assert pop.genome(kid.id).changes == changes and pop.seed().changes == ()
