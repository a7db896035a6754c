"""`python -m evolve lineage`: the ancestry tree in the terminal and as an image, on the smoke run."""

from __future__ import annotations

import re

import pytest
from PIL import Image
from run_helpers import evolve

from evolve import figures
from evolve.lineage import lineage_view
from population import Population

# The session's smoke run (tests/conftest.py) is built by whichever test asks first: ~1.5 min, more on a
# loaded machine, so these tests get more than the default 300 s.
pytestmark = pytest.mark.timeout(900)


def _means(run_dir) -> dict[str, float]:
    with Population.read(run_dir) as pop:
        frame = pop.archive()
    ok = frame[frame.status == "ok"]
    return ok.groupby("genome_id").val_bpb.mean().to_dict()


def _score(run_dir, gid: str) -> str:
    """A node's score as the tree must show it: the mean over ok evaluations (with n when several), else
    the last status (on a loaded machine even a sound child may end over budget)."""
    with Population.read(run_dir) as pop:
        rows = pop.archive().query("genome_id == @gid")
    ok = rows[rows.status == "ok"].val_bpb
    if not len(ok):
        return rows.status.iloc[-1]
    return f"{ok.mean():.4f}" + (f" (n={len(ok)})" if len(ok) > 1 else "")


def test_lineage_of_a_crossover_shows_both_parents_and_the_shared_seed_once(smoke_run):
    merge, seed = smoke_run.merge, smoke_run.seed
    proc = evolve("lineage", merge.id[:9], "--run-dir", str(smoke_run.run_dir))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"{merge.short_id}  merge  ")
    first, second = merge.parents
    assert lines[1].startswith(f"├─ {first[:7]}  hyperparam") and lines[2].startswith(f"│  └─ {seed.short_id}  seed")
    assert lines[3].startswith(f"└─ {second[:7]}  hyperparam")
    assert lines[4] == f"   └─ {seed.short_id}  seed  (shown above)" and len(lines) == 5


def test_lineage_nodes_carry_the_archive_val_bpb_and_the_change_from_each_parent(smoke_run):
    means = _means(smoke_run.run_dir)
    delta = lambda gid, parent: f"{means[gid] - means[parent]:+.4f}" if gid in means and parent in means else "-"
    merge, seed = smoke_run.merge, smoke_run.seed
    lines = evolve("lineage", merge.id, "--run-dir", str(smoke_run.run_dir)).stdout.splitlines()
    assert lines[0].startswith(f"{merge.short_id}  merge  {_score(smoke_run.run_dir, merge.id)}  Δ ")
    for parent in merge.parents:
        assert f"{delta(merge.id, parent)} vs {parent[:7]}" in lines[0]
    parent = merge.parents[0]
    score, idea = _score(smoke_run.run_dir, parent), smoke_run.children[0].description
    assert lines[1] == f"├─ {parent[:7]}  hyperparam  {score}  Δ {delta(parent, seed.id)}  {idea}"
    assert lines[2] == f"│  └─ {seed.short_id}  seed  {_score(smoke_run.run_dir, seed.id)}  seed genome"


def test_lineage_of_a_failed_child_names_its_status(smoke_run):
    proc = evolve("lineage", smoke_run.crasher.id[:8], "--run-dir", str(smoke_run.run_dir))
    assert proc.returncode == 0, proc.stderr
    assert re.match(rf"{smoke_run.crasher.short_id}  mutate  crash  Δ -  raise before training", proc.stdout)


def test_lineage_without_a_genome_is_the_best_genomes(smoke_run):
    with Population.read(smoke_run.run_dir) as pop:
        best = pop.best() or pop.seed()
    proc = evolve("lineage", "--run-dir", str(smoke_run.run_dir))
    assert proc.returncode == 0 and proc.stdout.startswith(best.short_id)


def test_lineage_image_draws_every_ancestor_and_every_parent_edge(smoke_run, tmp_path):
    out = tmp_path / "lineage.png"
    proc = evolve("lineage", smoke_run.merge.id, "--run-dir", str(smoke_run.run_dir), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 300 and image.height > 200
    with Population.read(smoke_run.run_dir) as pop:
        fig = figures.lineage_figure(lineage_view(pop, smoke_run.merge.id))
    ax = fig.axes[0]
    nodes = {t.get_gid(): t.get_text() for t in ax.texts}
    merge, seed = smoke_run.merge, smoke_run.seed
    assert set(nodes) == {merge.id, *merge.parents, seed.id}
    assert all(text.startswith(gid[:7]) for gid, text in nodes.items())
    edges = {line.get_gid() for line in ax.lines}
    assert edges == {f"{p}->{merge.id}" for p in merge.parents} | {f"{seed.id}->{p}" for p in merge.parents}


def test_lineage_image_may_be_svg(smoke_run, tmp_path):
    out = tmp_path / "tree.svg"
    proc = evolve("lineage", "seed", "--run-dir", str(smoke_run.run_dir), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "<svg" in out.read_text()[:2000]


def test_a_relative_lineage_out_is_written_into_the_runs_report_directory(smoke_run, tmp_path, monkeypatch, capsys):
    from evolve.cli import main

    run_dir = smoke_run.copy(tmp_path / "run")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["lineage", "seed", "--run-dir", str(run_dir), "--out", "tree.svg"]) == 0
    assert (run_dir / "report" / "tree.svg").is_file() and not list(elsewhere.iterdir())
    assert f"wrote {run_dir / 'report' / 'tree.svg'}" in capsys.readouterr().out
