"""`python -m evolve show` and `status` on the smoke run, finished and while another process holds it."""

from __future__ import annotations

import pytest
from run_helpers import evolve

from fitness.result import RunResult
from population import Population, PopulationConfig
from population.lineage import unified_diff

# The session's smoke run (tests/conftest.py) is built by whichever test asks first: ~1.5 min, more on a
# loaded machine, so these tests get more than the default 300 s.
pytestmark = pytest.mark.timeout(900)


def test_show_prints_the_genomes_train_py(smoke_run):
    proc = evolve("show", smoke_run.merge.id[:10], "--run-dir", str(smoke_run.run_dir))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == smoke_run.merge.source


def test_show_diff_is_the_diff_from_each_parent(smoke_run):
    merge = smoke_run.merge
    proc = evolve("show", merge.id, "--diff", "--run-dir", str(smoke_run.run_dir))
    assert proc.returncode == 0, proc.stderr
    parents = {g.id: g for g in smoke_run.children[:2]}
    assert proc.stdout == "".join(unified_diff(parents[p], merge) for p in merge.parents)
    assert f"--- a/{merge.parents[0][:7]}/train.py" in proc.stdout
    assert f"--- a/{merge.parents[1][:7]}/train.py" in proc.stdout


def test_show_diff_against_another_genome(smoke_run):
    proc = evolve("show", "best", "--diff", smoke_run.crasher.id[:8], "--run-dir", str(smoke_run.run_dir))
    assert proc.returncode == 0, proc.stderr
    with Population.read(smoke_run.run_dir) as pop:
        best = pop.best() or pop.seed()
    assert proc.stdout == unified_diff(smoke_run.crasher, best)
    assert '-raise RuntimeError("deliberate crash before training")' in proc.stdout


def test_show_diff_of_the_seed_says_it_has_no_parents(smoke_run, capsys):
    from evolve.cli import main

    assert main(["show", "seed", "--diff", "--run-dir", str(smoke_run.run_dir)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        captured.err.strip()
        == f"evolve: {smoke_run.seed.short_id} is the seed genome: it has no parents to diff against"
    )


def test_status_is_one_screen_with_counts_failures_and_the_best(smoke_run):
    proc = evolve("status", "--run-dir", str(smoke_run.run_dir))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) <= 40 and "(not running)" in lines[0]
    assert "profile smoke (budget 15.0 s, 20,480 tokens)" in proc.stdout
    summary = dict(line.split(None, 1) for line in lines if line.startswith(("children", "evaluations")))
    assert summary["children"].strip() == "4"
    assert summary["evaluations"].startswith("7 ") and "noise 3" in summary["evaluations"]
    crash = next(line for line in lines if line.split()[:1] == ["crash"])
    assert crash.split()[1:3] == ["1", "(25%)"]
    assert crash.endswith("e.g. RuntimeError: deliberate crash before training")
    with Population.read(smoke_run.run_dir) as pop:
        best = pop.best() or pop.seed()
    assert f"({best.short_id}, {best.operator}, unconfirmed)" in proc.stdout  # too small a run to confirm
    assert "crash: RuntimeError: deliberate crash before training" in proc.stdout


def test_a_live_run_can_be_inspected_while_it_records_but_not_replayed(smoke_run, tmp_path, seed_source):
    """A process holds the run (as the orchestrator does) and records as it goes: readers see every row."""
    run_dir = smoke_run.copy(tmp_path / "run")
    with Population.open(run_dir, None, PopulationConfig(population_size=4, confirm_repeats=2)) as writer:
        child, _ = writer.add(seed_source + "\n# in flight\n", [writer.seed().id], "mutate", "in flight", 3)
        status = evolve("status", "--run-dir", str(run_dir))
        assert status.returncode == 0, status.stderr
        assert "(running)" in status.stdout.splitlines()[0]
        assert "1 genome(s) committed but not yet evaluated" in status.stdout
        lineage = evolve("lineage", child.id[:8], "--run-dir", str(run_dir))
        assert lineage.returncode == 0 and lineage.stdout.startswith(f"{child.short_id}  mutate  unevaluated")
        result = RunResult(status="ok", val_bpb=3.25, profile="smoke", budget_seconds=2.0)
        writer.record(child.id, result, generation=3, started="2025-01-01T00:00:00", finished="2025-01-01T00:00:05")
        later = evolve("status", "--run-dir", str(run_dir))
        assert "evaluations      8 " in later.stdout and "0 genome(s) committed but not yet evaluated" in later.stdout
        replay = evolve("replay", "seed", "--run-dir", str(run_dir))
        assert replay.returncode == 2 and "open in another process" in replay.stderr
        assert len(replay.stderr.strip().splitlines()) == 1
    assert "(not running)" in evolve("status", "--run-dir", str(run_dir)).stdout


def _two_runs(smoke_run, root):
    """runs/older and runs/newer: copies of the smoke run, `newer` created last."""
    import os

    older, newer = smoke_run.copy(root / "runs" / "older"), smoke_run.copy(root / "runs" / "newer")
    marker = older / "population.json"
    os.utime(marker, (marker.stat().st_mtime - 60,) * 2)
    return older, newer


def test_inspection_commands_take_the_latest_run_under_runs_when_run_dir_is_left_out(
    smoke_run, tmp_path, monkeypatch, capsys
):
    from evolve.cli import main

    _, newer = _two_runs(smoke_run, tmp_path)
    monkeypatch.chdir(tmp_path)
    for argv in (["status"], ["show", "seed"], ["lineage"]):
        assert main(argv) == 0, argv
        assert capsys.readouterr().err == "evolve: run directory runs/newer (the latest under runs/)\n"
    assert main(["report"]) == 0
    assert (newer / "report" / "report.html").is_file()


def test_without_runs_the_inspection_commands_say_so_in_one_line(tmp_path, monkeypatch, capsys):
    from evolve.cli import main

    monkeypatch.chdir(tmp_path)
    for argv in (["status"], ["show", "best"], ["lineage"], ["report"], ["replay", "best"]):
        assert main(argv) == 2
        assert capsys.readouterr().err == "evolve: error: no run under 'runs' in this directory; pass --run-dir D\n"


def test_runs_lists_each_run_with_state_progress_size_and_best(smoke_run, tmp_path, monkeypatch, capsys):
    from evolve.cli import main

    _two_runs(smoke_run, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["runs"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split() == ["run", "state", "profile", "children", "size", "best"]
    assert [line.split()[0] for line in lines] == ["runs/older", "runs/newer"]
    with Population.read(smoke_run.run_dir) as pop:
        best = pop.best() or pop.seed()
        best_mean = pop.fitness(best.id).mean
    for line in lines:
        assert line.split()[1:4] == ["stopped", "smoke", "4"]
        assert line.split()[5] == "MB" and float(line.split()[4]) > 0
        assert f"best {best_mean:.4f} ({best.short_id}" in line


def test_show_log_prints_each_evaluations_log_the_trainer_worker_kept_in_the_run_directory(
    ray_session, tiny_profile, seed_source, tmp_path, capsys
):
    """Two evaluations of the same genome at the same training seed (a repeat after a failed noise run does
    that) keep two logs."""
    from evolve.cli import main
    from evolve.workers import TrainerWorker

    run_dir = tmp_path / "run"
    with Population.open(run_dir, seed_source, PopulationConfig(population_size=2)) as pop:
        seed = pop.seed()
    worker = ray_session.remote(TrainerWorker).remote(tiny_profile.to_dict(), "cpu", 1, (str(run_dir),))
    replies = [ray_session.get(worker.train.remote(seed_source, 5)) for _ in range(2)]
    ray_session.kill(worker)
    with Population.open(run_dir, None, PopulationConfig(population_size=2)) as pop:
        for reply, kind in zip(replies, ("noise", "repeat"), strict=True):
            where = reply.where
            pop.record(seed.id, reply.result, kind=kind, generation=0, started=where.started, finished=where.finished)
    capsys.readouterr()
    assert main(["show", "seed", "--log", "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    headers = [line for line in out.splitlines() if line.startswith("=== ")]
    assert [h.split(":")[0] for h in headers] == [
        f"=== {seed.short_id} noise seed 5",
        f"=== {seed.short_id} repeat seed 5",
    ]
    paths = [h[h.index("(") + 1 : h.rindex(")")] for h in headers]
    assert len(set(paths)) == 2 and all(path.startswith(str(run_dir / "logs")) for path in paths)
    assert out.count("\nstep ") >= 2 and "no log kept" not in out, out[-2000:]
