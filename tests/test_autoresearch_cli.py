"""autoresearch on the command line: importing an autoresearch checkout, evolving it with the offline
operators (in a run of the random strategy, whose tests read the same run), exporting back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from genomes import bigram
from run_helpers import FAST, TROUBLE, archive, assert_clean, evolve, finished_children, refused

from population import Population

GENOME = Path(__file__).parent / "genomes" / "autoresearch_cpu.py"


# --- import-autoresearch -------------------------------------------------------------------------------
def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def autoresearch_checkout(path: Path) -> tuple[Path, dict[str, str]]:
    """A git repo as autoresearch leaves it: a commit per experiment, results.tsv logging each; returns
    the repo and the train.py of each experiment, by name."""
    path.mkdir()
    _git(path, "init", "-q")
    _git(path, "config", "user.email", "a@example.com")
    _git(path, "config", "user.name", "a")
    base = GENOME.read_text()
    sources = {
        "baseline": base,
        "deeper": base.replace("DEPTH = 2 ", "DEPTH = 3 "),
        "wider": base.replace("DEPTH = 2 ", "DEPTH = 3 ").replace("ASPECT_RATIO = 32", "ASPECT_RATIO = 48"),
        "broken": base.replace("DEPTH = 2 ", "DEPTH = 0 "),
        "lr": base.replace("DEPTH = 2 ", "DEPTH = 3 ").replace("MATRIX_LR = 0.01", "MATRIX_LR = 0.02"),
    }
    figures = {"baseline": "0.998\t44.0\tkeep", "deeper": "0.990\t45.1\tkeep", "wider": "0.993\t52.0\tdiscard"}
    figures |= {"broken": "0.000000\t0.0\tcrash", "lr": "0.985\t45.1\tkeep"}
    rows = ["commit\tval_bpb\tmemory_gb\tstatus\tdescription"]
    for name, source in sources.items():
        (path / "train.py").write_text(source)
        _git(path, "add", "train.py")
        _git(path, "commit", "-q", "-m", name)
        rows.append(f"{_git(path, 'rev-parse', '--short=7', 'HEAD')}\t{figures[name]}\t{name}")
        if figures[name].endswith(("discard", "crash")):
            _git(path, "reset", "-q", "--hard", "HEAD~1")  # autoresearch rewinds what it does not keep
    (path / "results.tsv").write_text("\n".join(rows) + "\n")  # untracked, as autoresearch keeps it
    return path, sources


def test_import_brings_kept_commits_in_as_imported_ancestors_of_the_seed(tmp_path):
    checkout, sources = autoresearch_checkout(tmp_path / "autoresearch")
    run_dir = tmp_path / "run"
    result = evolve("import-autoresearch", str(checkout), "--run-dir", str(run_dir), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "imported 2 kept commit(s) as ancestors of the seed" in result.stdout
    with Population.read(run_dir) as pop:
        seed = pop.seed()
        assert seed.source == sources["lr"]  # the last kept experiment is where the run goes on
        chain = [pop.genome(seed.parents[0])]
        chain.append(pop.genome(chain[0].parents[0]))
        assert not chain[1].parents
        assert [g.source for g in chain] == [sources["deeper"], sources["baseline"]]
        assert {g.operator for g in chain} == {"imported"}
        assert chain[0].meta["autoresearch_val_bpb"] == 0.990 and chain[0].meta["autoresearch_memory_gb"] == 45.1
        assert "autoresearch " in chain[0].description and "not scored here" in chain[0].description
        assert pop.unevaluated() == [] and len(pop.archive()) == 0  # nothing imported is trained or scored


@pytest.fixture(scope="module")
def imported_run(tmp_path_factory) -> Path:
    """An imported autoresearch checkout evolved by the offline operators under the random strategy for two
    generations of two: one finished run, read by the tests below."""
    checkout, _ = autoresearch_checkout(tmp_path_factory.mktemp("autoresearch") / "checkout")
    run_dir = checkout.parent / "run"
    assert evolve("import-autoresearch", str(checkout), "--run-dir", str(run_dir), timeout=120).returncode == 0
    result = evolve(
        "--population", "2", "--generations", "2", "--mutators", "offline", "--strategy", "random",
        "--run-dir", str(run_dir), *FAST,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert_clean(result)
    assert "random's pick (its best at training seed 0)" in result.stdout  # the summary names the strategy's pick
    return run_dir


@pytest.mark.slow
def test_imported_run_evolves_from_the_last_kept_commit_without_training_its_ancestors(imported_run):
    frame = archive(imported_run)
    with Population.read(imported_run) as pop:
        seed = pop.seed().id
        imported = {pop.seed().parents[0], pop.genome(pop.seed().parents[0]).parents[0]}
    assert set(frame.genome_id[frame.kind == "noise"]) == {seed}
    assert not imported & set(frame.genome_id)  # ancestors keep autoresearch's figures, never ours
    children = frame[frame.kind == "child"]
    assert len(children) == 4 and not frame.status.isin(TROUBLE).any(), frame[["status", "reason"]]
    assert (frame.status == "ok").any() and set(children.operator) == {"hyperparam"}  # offline, on its knobs


@pytest.mark.slow
def test_a_random_strategy_run_mutates_only_the_seed_and_takes_no_repeats(imported_run):
    assert json.loads((imported_run / "run.json").read_text())["strategy"] == "random"
    with Population.read(imported_run) as pop:
        frame, seed = pop.archive(), pop.seed().id
        parents = {pop.genome(g).parents for g in frame[frame.kind == "child"].genome_id}
    assert parents == {(seed,)} and finished_children(frame) == 4 and not (frame.kind == "repeat").any()


def test_import_refuses_a_directory_without_an_autoresearch_log(tmp_path, capsys):
    (tmp_path / "results.tsv").write_text("a\tb\n1\t2\n")
    args = ["import-autoresearch", str(tmp_path), "--run-dir", str(tmp_path / "run")]
    refused(args, "is not an autoresearch log (expected columns commit, val_bpb", capsys)
    assert not (tmp_path / "run").exists()


# --- export-autoresearch -------------------------------------------------------------------------------
FAKE_PREPARE = """
import torch

MAX_SEQ_LEN = 16
TIME_BUDGET = 1


class Tokenizer:
    @classmethod
    def from_directory(cls):
        return cls()

    def get_vocab_size(self):
        return 512

    def get_bos_token_id(self):
        return 511


def make_dataloader(tokenizer, B, T, split):
    assert split == "train"
    gen = torch.Generator().manual_seed(0)
    while True:
        rows = torch.randint(0, 64, (B, T + 1), generator=gen)
        yield rows[:, :-1], rows[:, 1:], 1


def evaluate_bpb(model, tokenizer, batch_size):
    x, y, _ = next(make_dataloader(tokenizer, batch_size, MAX_SEQ_LEN, "train"))
    return model(x, y, reduction="none").view(-1).mean().item()
"""


def test_exported_harness_genome_runs_under_an_autoresearch_prepare(tmp_path):
    run_dir = tmp_path / "run"
    with Population(run_dir, bigram()):
        pass
    out = tmp_path / "autoresearch" / "train.py"
    out.parent.mkdir()
    (out.parent / "prepare.py").write_text(FAKE_PREPARE)
    result = evolve("export-autoresearch", "seed", "--run-dir", str(run_dir), "--out", str(out), timeout=120)
    assert result.returncode == 0, result.stderr
    ran = subprocess.run([sys.executable, "train.py"], cwd=out.parent, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    summary = dict(line.split(":", 1) for line in ran.stdout.split("---\n", 1)[1].splitlines())
    assert 0 < float(summary["val_bpb"]) < 6.3  # below ln(512): the bigram learned the 64 tokens used
    assert int(summary["num_steps"]) > 10


def test_exporting_an_autoresearch_genome_writes_it_unchanged(tmp_path):
    run_dir = tmp_path / "run"
    with Population(run_dir, GENOME.read_text()):
        pass
    result = evolve("export-autoresearch", "seed", "--run-dir", str(run_dir), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == GENOME.read_text()
