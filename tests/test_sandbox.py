"""Without bubblewrap, or where it may not create namespaces, evolve says so once, loudly, and falls back."""

from __future__ import annotations

import logging
import os

import pytest
from genomes import bigram

from fitness import data
from trainer import TrainerConfig, run, sandbox


@pytest.fixture
def fresh_probe():
    """bwrap_path() checks once per process; these tests need it to look again, and then forget."""
    sandbox.bwrap_path.cache_clear()
    yield
    sandbox.bwrap_path.cache_clear()


def sandbox_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "SANDBOX OFF" in r.getMessage()]


def test_missing_bubblewrap_is_said_once_and_children_run_unisolated(
    tiny_profile, tmp_path, monkeypatch, caplog, fresh_probe
):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it, bwrap least of all
    caplog.set_level(logging.WARNING, logger="trainer.sandbox")
    probe = f"import os\nprint('SEES THE CACHE', os.path.isdir({str(data.cache_root())!r}))\n"
    result = run(bigram(head=probe), tiny_profile, config=TrainerConfig(threads=2))
    assert sandbox.bwrap_path() is None  # asked again: no second warning
    assert result.status == "ok", result.reason
    assert "SEES THE CACHE True" in result.log_tail  # really unisolated: the fallback is not silent, nor pretended
    (warning,) = sandbox_warnings(caplog)
    assert warning.startswith("SANDBOX OFF: bubblewrap is not installed")


def test_bubblewrap_without_namespaces_is_said_once_with_its_reason(tmp_path, monkeypatch, caplog, fresh_probe):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    caplog.set_level(logging.WARNING, logger="trainer.sandbox")
    command = ["python", "-m", "fitness.child", "spec.json"]
    for _ in range(3):
        wrapped = sandbox.wrap(command, tmp_path, hide=[], ro_binds={}, rw_binds={}, gpu=False, disk_bytes=2**20)
        assert wrapped == command  # falls back to the bare command
    (warning,) = sandbox_warnings(caplog)
    assert "can't create namespaces here (bwrap: No permissions to create new namespace)" in warning
