"""Starting the run's private local Ray (evolve/session.py start_ray): quiet, with --dashboard a dashboard, and
the API key kept in the driver (no Ray process inherits it)."""

from __future__ import annotations

import subprocess
import sys

from run_helpers import FAST, run_env

KEY = "sk-ant-test-session-KEY-0123456789"

# In a fresh process, as the run is: the suite's own Ray (one per session) must not be the one looked at.
START = """
import os, sys, urllib.request
from pathlib import Path
import ray
from evolve.cli import build_parser
from evolve.run import CACHE_ENV, settings_from_args
from evolve.session import start_ray
from mutators import Mutators

settings = settings_from_args(build_parser().parse_args(["--run-dir", sys.argv[1], *sys.argv[2:]]))
mutators = Mutators(settings.mutators)  # as the run does: the key is read, then Ray starts
start_ray(settings, CACHE_ENV)
url = ray._private.worker.get_dashboard_url()
print("status", urllib.request.urlopen("http://" + url, timeout=60).status if url else None)
worker = ray.get(ray.remote(lambda: os.getpid()).remote())
parents = {}
for stat in Path("/proc").glob("[0-9]*/stat"):
    try:
        parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        continue
found, frontier = set(), {os.getpid()}
while frontier:
    frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
    found |= frontier
names = {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in found}
assert any(b"raylet" in c for c in names.values()) and any(b"gcs_server" in c for c in names.values())
assert worker in found
leaks = [names[pid][:80] for pid in found if b"ANTHROPIC_" in Path(f"/proc/{pid}/environ").read_bytes()]
ray.shutdown()
assert mutators.llm_available and "ANTHROPIC_API_KEY" not in os.environ
print("leaks:", leaks)
"""


def _start(tmp_path, *flags: str) -> subprocess.CompletedProcess:
    """start_ray in a fresh process, as the run calls it, with an API key and without RAY_AUTH_MODE set by the
    caller."""
    env = run_env(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL="http://127.0.0.1:9")
    del env["RAY_AUTH_MODE"]
    args = [sys.executable, "-c", START, str(tmp_path / "run"), "--mutators", "llm", *FAST, *flags]
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)


def test_the_dashboard_flag_starts_rays_dashboard_and_says_where(tmp_path):
    proc = _start(tmp_path, "--dashboard")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("evolve: Ray dashboard at http://") and lines[1:] == ["status 200", "leaks: []"], (
        proc.stdout
    )


def test_the_private_local_ray_starts_quietly_and_no_ray_process_inherits_the_api_key(tmp_path):
    proc = _start(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == ["status None", "leaks: []"], proc.stdout
    assert "token" not in proc.stderr.lower(), proc.stderr[-3000:]
