"""The standby child: started ahead in its sandbox, given its genome only at its go, refilled after each child."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from genomes import bigram

from trainer import Standby, TrainerConfig, run

CONFIG = TrainerConfig(threads=2)
WHERE = 'import os\nprint("RAN IN", os.path.basename(os.getcwd()), "KEY", os.environ.get("ANTHROPIC_API_KEY"))\n'


@pytest.fixture
def standby():
    waiting = Standby()
    yield waiting
    waiting.close()


def processes_of(box) -> list[str]:
    """The processes whose command line names this sandbox directory (bubblewrap and the child in it)."""
    return subprocess.run(["pgrep", "-f", box.name], capture_output=True, text=True).stdout.split()


def test_standby_child_runs_the_genome_given_at_its_go_and_the_next_one_is_started(
    tiny_profile, scorer, standby, monkeypatch
):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-standby-secret")
    standby.fill(tiny_profile, CONFIG)
    first = standby.box
    assert first.is_dir() and processes_of(first)
    assert (first / "train.py").read_text() == ""  # it waits with no genome
    result = run(bigram(head=WHERE), tiny_profile, seed=1, config=CONFIG, scorer=scorer, standby=standby)
    assert result.status == "ok", result.reason
    assert f"RAN IN {first.name} KEY None" in result.log_tail  # the standby ran it, with the scrubbed environment
    assert not first.exists() and not processes_of(first)
    second = standby.box
    assert second is not None and second != first and processes_of(second)


def test_standby_that_does_not_fit_or_has_died_is_discarded_and_the_child_started_on_demand(
    tiny_profile, scorer, standby
):
    standby.fill(tiny_profile, CONFIG)
    stale = standby.box
    other = TrainerConfig(threads=1)
    result = run(bigram(head=WHERE), tiny_profile, config=other, scorer=scorer, standby=standby)
    assert result.status == "ok", result.reason
    assert f"RAN IN {stale.name}" not in result.log_tail and "RAN IN evolve-child-" in result.log_tail
    assert not stale.exists() and not processes_of(stale)

    dead = standby.box  # refilled for threads=1
    subprocess.run(["pkill", "-KILL", "-f", dead.name], check=True)
    deadline = time.monotonic() + 10
    while processes_of(dead) and time.monotonic() < deadline:
        time.sleep(0.1)
    result = run(bigram(head=WHERE), tiny_profile, config=other, scorer=scorer, standby=standby)
    assert result.status == "ok", result.reason
    assert f"RAN IN {dead.name}" not in result.log_tail and not dead.exists()


def test_closing_a_standby_ends_its_child_and_removes_its_directory(tiny_profile, standby):
    standby.fill(tiny_profile, CONFIG)
    box = standby.box
    standby.close()
    assert standby.box is None and not box.exists() and not processes_of(box)


def test_sandbox_directories_of_trainers_no_longer_alive_are_swept_once(tmp_path, monkeypatch):
    import tempfile

    from trainer.spawn import sweep_boxes

    gone = subprocess.Popen(["true"])
    gone.wait()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    left = tmp_path / f"evolve-child-{gone.pid}-abc123"
    (left / "data").mkdir(parents=True)
    (left / "train.py").write_text("left behind by a killed worker\n")
    mine = tmp_path / f"evolve-child-{os.getpid()}-def456"
    mine.mkdir()
    unrelated = tmp_path / "evolve-child-notapid-x"
    unrelated.mkdir()
    sweep_boxes.cache_clear()
    assert sweep_boxes() == [left]
    assert not left.exists() and mine.is_dir() and unrelated.is_dir()
    left.mkdir()
    sweep_boxes()
    assert left.is_dir()  # once per process, before its first child
    sweep_boxes.cache_clear()


def test_a_standby_that_cannot_start_is_a_warning_not_an_error(tiny_profile, standby, tmp_path, monkeypatch, caplog):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))  # nowhere to make its directory
    standby.fill(tiny_profile, CONFIG)
    assert standby.box is None
    assert "could not start a standby child: FileNotFoundError" in caplog.text
