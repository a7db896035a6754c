"""The default layout of a user's machine: the token cache inside $HOME (~/.cache/evolve), both hidden."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fitness import data
from trainer import run, sandbox


def test_a_hidden_path_inside_another_is_hidden_with_it():
    assert sandbox.bwrap_path() is not None, "tests/run.sh installs bubblewrap"
    top = Path(tempfile.mkdtemp(dir="/var/tmp"))  # outside /tmp, which the child always gets fresh
    try:
        home, cache = top / "home", top / "home" / ".cache" / "evolve"
        cache.mkdir(parents=True)
        args = sandbox.wrap(
            ["true"], top / "box", hide=[cache, home], ro_binds={}, rw_binds={}, gpu=False, disk_bytes=1
        )
        mounted = [args[i + 1] for i, a in enumerate(args) if a in ("--tmpfs", "--remount-ro")]
        assert str(home.resolve()) in mounted and str(cache.resolve()) not in mounted
    finally:
        shutil.rmtree(top)


def test_a_child_trains_when_the_cache_lives_in_the_hidden_home(monkeypatch, tiny_profile, seed_source):
    """The cache under the real $HOME, as by default: Python and our code under the hidden $HOME stay
    importable by the child's own uid, and the nested cache stays hidden with its parent."""
    p = tiny_profile
    data.prepare(p.dataset, p.vocab_size, (p.seq_len,), p.num_shards)  # the session's cache
    (Path.home() / ".cache").mkdir(exist_ok=True)
    cache = Path(tempfile.mkdtemp(prefix="evolve-test-", dir=Path.home() / ".cache"))
    try:
        shutil.copytree(data.cache_root(), cache, dirs_exist_ok=True)
        monkeypatch.setenv("EVOLVE_CACHE", str(cache))
        result = run(seed_source, p, seed=0)
        assert result.status in ("ok", "over_budget"), (result.reason, result.log_tail[-2000:])
        assert result.num_steps > 0  # it trained: imports, data and the sandbox all worked
    finally:
        shutil.rmtree(cache)
