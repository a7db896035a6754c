"""The run with LLM mutators, through the real anthropic SDK in the run's own process, against a loopback
`POST /v1/messages` server that answers like a (very simple) researcher: each request gets a fresh
edit of the parent it was shown; its first answer plants a crash, which the run sends back for repair.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import REPO
from llm_server import FakeAnthropic, Recorded, Reply, text_reply
from run_helpers import FAST, TIMEOUT, archive, assert_clean, run_env

pytestmark = [pytest.mark.timeout(1500), pytest.mark.slow]  # subprocess runs; the policy: tests/test_policy.py

KEY = "sk-ant-test-run-KEY-0123456789"
CRASH = 'raise RuntimeError("scripted crash")'
KNOB = re.compile(r"^MATRIX_LR = ([0-9.e-]+)(.*)$", re.MULTILINE)


class Researcher(FakeAnthropic):
    """Answers from the prompt it receives instead of a fixed script."""

    def _next(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            n = len(self.requests)
        prompt = "\n".join(_text(m["content"]) for m in recorded.body["messages"] if m["role"] == "user")
        if CRASH in prompt:  # a repair request: take the planted line out again
            return edit(f"{CRASH}\nBIAS_FREE = True", "BIAS_FREE = True", "repair: remove the stray raise")
        if n == 1:  # an idea with a bug in it: the repair must keep the idea (BIAS_FREE) and drop the bug
            return edit("import harness", f"import harness\n{CRASH}\nBIAS_FREE = True", "try an early exit")
        value, comment = KNOB.search(prompt).groups()
        new = f"{float(value) * (1 + 0.01 * n):.6g}"
        return edit(f"MATRIX_LR = {value}{comment}", f"MATRIX_LR = {new}{comment}", f"Muon LR {value} -> {new}")

    def _done(self) -> None:
        pass


def _text(content) -> str:
    return content if isinstance(content, str) else "\n".join(block.get("text", "") for block in content)


def edit(search: str, replace: str, description: str) -> Reply:
    return text_reply(f"DESCRIPTION: {description}\n\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n")


def run_with_llm(run_dir, server: FakeAnthropic, *args: str) -> subprocess.CompletedProcess:
    env = {**run_env(), "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": server.base_url}
    command = [sys.executable, "-m", "evolve", "--mutators", "llm", "--run-dir", str(run_dir), *args, *FAST]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=TIMEOUT)


def test_llm_mutation_crash_and_repair_in_a_run_with_costs_recorded_and_the_key_kept_out(tmp_path):
    run_dir = tmp_path / "run"
    with Researcher() as server:
        result = run_with_llm(run_dir, server, "--population", "2", "--generations", "3", "--repeat-share", "0")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert_clean(result)
    frame = archive(run_dir)
    children = frame[frame.kind == "child"]
    assert len(children) == 6 and set(children.operator) <= {"mutate", "crossover", "repair"}
    crashed = children[children.reason.str.contains("scripted crash")]
    assert len(crashed) == 1 and crashed.status.iloc[0] == "crash"
    repaired = children[children.operator == "repair"]
    assert len(repaired) >= 1 and (repaired.status == "ok").all(), result.stdout[-4000:]
    assert repaired.parents.iloc[0] == crashed.genome_id.iloc[0]  # the repair descends from the crash
    assert (children.llm_cost_usd > 0).all() and (children.llm_model == "claude-sonnet-4-6").all()
    # every request's usage is billed to some child: the archive's total is what the server served
    served = sum(1 for r in server.requests if r.path == "/v1/messages")
    assert abs(children.llm_cost_usd.sum() - served * (1000 * 3 + 200 * 15) / 1e6) < 1e-9
    assert all(r.headers.get("x-api-key") == KEY or KEY in r.headers.get("authorization", "") for r in server.requests)
    leaked = [p for p in run_dir.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert not leaked and KEY not in result.stdout + result.stderr


def test_max_llm_cost_stops_the_run(tmp_path):
    run_dir = tmp_path / "run"
    limits = ["--max-llm-cost", "0.012", "--workers", "1", "--lookahead", "0"]  # one request at a time
    with Researcher() as server:  # $0.006 a request: the budget allows two
        result = run_with_llm(run_dir, server, "--population", "2", "--generations", "5", *limits)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "--max-llm-cost reached" in result.stdout or "LLM budget" in result.stdout
    assert len(server.requests) == 2  # no request once the budget was spent
    frame = archive(run_dir)
    assert frame.llm_cost_usd.sum() <= 0.012 + 1e-9 and (frame.kind == "child").sum() < 10
