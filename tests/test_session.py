"""Starting the run's private local Ray (evolve/session.py start_ray): quiet, and with --dashboard, a dashboard."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO

START = """
import sys, urllib.request
import ray
from evolve.cli import build_parser
from evolve.run import settings_from_args
from evolve.session import start_ray
args = build_parser().parse_args(["--profile", "smoke", "--run-dir", sys.argv[1], *sys.argv[2:]])
start_ray(settings_from_args(args), ())
url = ray._private.worker.get_dashboard_url()
print("status", urllib.request.urlopen("http://" + url, timeout=60).status if url else None)
ray.shutdown()
"""


def _start(tmp_path, *flags: str) -> subprocess.CompletedProcess:
    """start_ray in a fresh process, as the run calls it, without RAY_AUTH_MODE set by the caller."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    env["PYTHONPATH"] = str(REPO)
    args = [sys.executable, "-c", START, str(tmp_path / "run"), *flags]
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)


def test_the_dashboard_flag_starts_rays_dashboard_and_says_where(tmp_path):
    proc = _start(tmp_path, "--dashboard")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("evolve: Ray dashboard at http://") and lines[-1] == "status 200", proc.stdout


def test_the_private_local_ray_starts_without_a_dashboard_or_a_token_warning(tmp_path):
    proc = _start(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == ["status None"]
    assert "token" not in proc.stderr.lower(), proc.stderr[-3000:]
