"""The run with LLM mutators, through the real anthropic SDK in the run's own process, against a loopback
`POST /v1/messages` server that answers like a (very simple) researcher: each request gets a fresh
edit of the parent it was shown; its first answer plants a crash, which the run sends back for repair.
The server plays the API's prompt cache (tests/llm_server.PromptCache) and streams its replies.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
from conftest import REPO
from llm_server import FakeAnthropic, PromptCache, Recorded, Reply, error_reply, text_reply
from run_helpers import FAST, TIMEOUT, archive, assert_clean, run_env

from population import Population

pytestmark = [pytest.mark.timeout(1500), pytest.mark.slow]  # subprocess runs; the policy: tests/test_policy.py

KEY = "sk-ant-test-run-KEY-0123456789"
CRASH = 'raise RuntimeError("scripted crash")'
KNOB = re.compile(r"^MATRIX_LR = ([0-9.e-]+)(.*)$", re.MULTILINE)


class Researcher(FakeAnthropic):
    """Answers from the prompt it receives instead of a fixed script; `crash_first`: plant a crash first."""

    crash_first = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.cache = PromptCache()
        self.served: list[dict] = []  # the usage of every reply

    def _next(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            n = len(self.requests)
        usage = self.cache.usage(recorded.body)
        with self._lock:
            self.served.append(usage)
        prompt = prompt_text(recorded)
        if CRASH in prompt:  # a repair request: take the planted line out again
            return edit(f"{CRASH}\nBIAS_FREE = True", "BIAS_FREE = True", "repair: remove the stray raise", usage)
        if n == 1 and self.crash_first:  # an idea with a bug: the repair must keep the idea (BIAS_FREE)
            return edit("import harness", f"import harness\n{CRASH}\nBIAS_FREE = True", "try an early exit", usage)
        value, comment = KNOB.search(prompt).groups()
        new = f"{float(value) * (1 + 0.01 * n):.6g}"
        return edit(f"MATRIX_LR = {value}{comment}", f"MATRIX_LR = {new}{comment}", f"Muon LR {value} -> {new}", usage)

    def _done(self) -> None:
        pass

    def cost(self, upto: int | None = None) -> float:
        """What the first `upto` replies cost at the default model's $2/$10 per million tokens (reads 0.1x, writes
        1.25x the input)."""
        paid = [
            u["input_tokens"] * 2
            + u["cache_read_input_tokens"] * 0.2
            + u["cache_creation_input_tokens"] * 2.5
            + 200 * 10
            for u in self.served[:upto]
        ]
        return sum(paid) / 1e6


def prompt_text(recorded: Recorded) -> str:
    return "\n".join(_text(m["content"]) for m in recorded.body["messages"] if m["role"] == "user")


def _text(content) -> str:
    return content if isinstance(content, str) else "\n".join(block.get("text", "") for block in content)


def edit(search: str, replace: str, description: str, usage: dict) -> Reply:
    text = f"DESCRIPTION: {description}\n\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"
    return text_reply(
        text,
        input_tokens=usage["input_tokens"],
        cache_read=usage["cache_read_input_tokens"],
        cache_write=usage["cache_creation_input_tokens"],
    )


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
    assert (children.llm_cost_usd > 0).all() and (children.llm_model == "claude-sonnet-5-5").all()
    # every request's usage is billed to some child: the archive's total is what the server served
    assert abs(children.llm_cost_usd.sum() - server.cost()) < 1e-9
    prompts = [prompt_text(r) for r in server.requests]
    # the noise is in every prompt: measured, or said to be not yet (proposals made ahead of the seed's noise
    # runs: how many depends on how fast the machine trains them)
    told = ["sigma = " in p for p in prompts]
    assert all(t or "Not measured yet" in p for t, p in zip(told, prompts, strict=True)) and any(told), told
    assert all("Each child trains for 1 s on cpu" in p for p in prompts)
    assert any("## Inspirations" in p for p in prompts) and any("## Ledger of ideas" in p for p in prompts)
    recorded = json.loads((run_dir / "run.json").read_text())["llm"]
    assert (recorded["model"], recorded["price"], recorded["max_concurrency"]) == ("claude-sonnet-5-5", [2.0, 10.0], 4)
    kept = [json.loads(p.read_text()) for p in (run_dir / "llm").glob("*.json")]
    assert sum(k["usage"]["requests"] for k in kept) == len(server.requests)
    assert sum(k["usage"]["cache_read_tokens"] for k in kept) > 0  # the stable prefix was read from the cache
    assert all(r.headers.get("x-api-key") == KEY or KEY in r.headers.get("authorization", "") for r in server.requests)
    status = subprocess.run(
        [sys.executable, "-m", "evolve", "status", "--run-dir", str(run_dir)],
        capture_output=True, text=True, cwd=REPO, env=run_env(), timeout=120,
    ).stdout  # fmt: skip
    spend = {line.split()[0]: line for line in status.splitlines() if line.startswith("  ") and " on " in line}
    assert "1 crash" in spend["mutate"] and "ok" in spend["repair"]  # LLM spend by operator and outcome
    leaked = [p for p in run_dir.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert not leaked and KEY not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--price", "3"], "bad --price '3': expected IN/OUT"),
        (["--llm-timeout", "soon"], "bad --llm-timeout 'soon'"),
        (["--llm-concurrency", "0"], "bad --llm-concurrency 0: must be >= 1"),
        (["--max-tokens", "0"], "bad --max-tokens 0: must be >= 1"),
        (["--model", "claude-mythos-5-2", "--max-llm-cost", "5"], "no price known for model 'claude-mythos-5-2'"),
    ],
)
def test_bad_llm_flags_are_one_line_naming_the_flag(tmp_path, flags, message):
    command = [sys.executable, "-m", "evolve", "--run-dir", str(tmp_path / "r"), *flags]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=run_env(), timeout=120)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_max_llm_cost_stops_the_run(tmp_path):
    run_dir = tmp_path / "run"
    limits = ["--max-llm-cost", "0.03", "--workers", "1", "--lookahead", "0"]  # one request at a time
    with Researcher() as server:  # about $0.01 a request
        result = run_with_llm(run_dir, server, "--population", "2", "--generations", "5", *limits)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "--max-llm-cost reached" in result.stdout or "LLM budget" in result.stdout
    n = len(server.requests)  # no request once the budget was spent: the last one crossed it
    assert n >= 2 and server.cost(n - 1) < 0.03 <= server.cost(n)
    frame = archive(run_dir)
    with Population.read(run_dir) as pop:  # a child proposed as the run stopped is billed when it trains
        pending = sum(g.meta["llm"]["cost_usd"] for g in pop.unevaluated() if g.id not in set(frame.genome_id))
    assert abs(frame.llm_cost_usd.sum() + pending - server.cost()) < 1e-9 and (frame.kind == "child").sum() < 10


def test_a_resumed_run_tells_the_llm_what_the_last_session_tried(tmp_path):
    run_dir = tmp_path / "run"
    args = ["--population", "2", "--repeat-share", "0", "--workers", "1"]
    with Researcher() as first:
        result = run_with_llm(run_dir, first, *args, "--generations", "1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    before = archive(run_dir)
    tried = before[before.kind == "child"]
    with Researcher() as second:
        second.crash_first = False
        result = run_with_llm(run_dir, second, *args, "--generations", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    prompt = prompt_text(second.requests[0])
    ledger = prompt[prompt.index("## Ledger of ideas") :]
    for row in tried.itertuples():
        assert row.genome_id[:7] in ledger and row.description in ledger
    assert "FAILED (crash: " in ledger and "kept" not in ledger


class Outage(Researcher):
    """Answers 529 (overloaded, come back in 50 ms) for `down_s` after the first request, then recovers."""

    crash_first = False
    down_s = 20.0

    def _next(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.first = getattr(self, "first", time.monotonic())
            down = time.monotonic() - self.first < self.down_s
            if down:
                self.requests.append(recorded)
                self.refused = getattr(self, "refused", 0) + 1
        if down:
            return error_reply(529, "overloaded_error", "Overloaded", headers=(("retry-after-ms", "50"),))
        return super()._next(recorded)


def test_an_endpoint_down_for_a_while_keeps_every_slot_training_offline_stand_ins_and_the_run_finishes(tmp_path):
    run_dir = tmp_path / "run"
    args = ["--population", "2", "--generations", "6", "--repeat-share", "0", "--workers", "2"]
    with Outage() as server:
        result = run_with_llm(run_dir, server, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "failed 50 times in a row" not in result.stdout + result.stderr
    children = archive(run_dir)
    children = children[children.kind == "child"]
    assert len(children) == 12 and server.refused >= 5
    with Population.read(run_dir) as pop:
        notes = {row.genome_id: " ".join(pop.genome(row.genome_id).changes) for row in children.itertuples()}
    stand_ins = [g for g, text in notes.items() if "offline stand-in for" in text and "LLM outage" in text]
    assert stand_ins and set(children[children.genome_id.isin(stand_ins)].operator) == {"hyperparam"}
    after = children[~children.genome_id.isin(stand_ins)]
    assert (after.operator == "mutate").any()  # the LLM came back once the endpoint answered


_KEY_CHECK = """
import os, sys
from pathlib import Path
import ray
from evolve.cli import build_parser
from evolve.run import CACHE_ENV, settings_from_args
from evolve.session import start_ray
from mutators import Mutators

settings = settings_from_args(build_parser().parse_args(sys.argv[1:]))
mutators = Mutators(settings.mutators)  # as the run does: the key is read, then Ray starts
start_ray(settings, CACHE_ENV)
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


def test_the_api_key_stays_in_the_driver_and_no_ray_process_inherits_it(tmp_path):
    # A fresh process, as the run is: the suite's own Ray (one per session) must not be the one looked at.
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled", PYTHONPATH=str(REPO))
    args = ["--mutators", "llm", "--run-dir", str(tmp_path / "r"), *FAST]
    proc = subprocess.run([sys.executable, "-c", _KEY_CHECK, *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=TIMEOUT)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "leaks: []", proc.stdout
