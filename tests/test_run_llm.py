"""The run with LLM mutators, through the real anthropic SDK in the run's own process, against a loopback
`POST /v1/messages` server that answers like a (very simple) researcher: each request gets a fresh
edit of the parent it was shown; its first answer plants a crash, which the run sends back for repair.
The server plays the API's prompt cache (tests/llm_server.PromptCache) and streams its replies.
Bad LLM flags: tests/test_run_input.py; the key kept out of every Ray process: tests/test_session.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from llm_server import FakeAnthropic, PromptCache, Recorded, Reply, error_reply, text_reply
from run_helpers import FAST, archive, assert_clean, evolve, run_env

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
    env = run_env(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=server.base_url)
    return evolve("--mutators", "llm", "--run-dir", str(run_dir), *args, *FAST, env=env)


@dataclass(frozen=True)
class LlmRun:
    """A finished LLM run, what it printed, and what its server was asked and served."""

    run_dir: Path
    result: subprocess.CompletedProcess
    server: Researcher


@pytest.fixture(scope="module")
def llm_run(tmp_path_factory) -> LlmRun:
    """Three generations of two children with LLM mutators, the first answer planting a crash: run once and
    read by the tests below (the resume test resumes a copy)."""
    run_dir = tmp_path_factory.mktemp("llm-run") / "run"
    with Researcher() as server:
        result = run_with_llm(run_dir, server, "--population", "2", "--generations", "3")
    return LlmRun(run_dir, result, server)


def test_llm_mutation_crash_and_repair_in_a_run_with_costs_recorded_and_the_key_kept_out(llm_run):
    run_dir, result, server = llm_run.run_dir, llm_run.result, llm_run.server
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
    # (Inspirations and the ledger need results: proposals made ahead of every result have neither, so they
    # are checked in the resumed run's first prompt, which knows the whole first session)
    recorded = json.loads((run_dir / "run.json").read_text())["llm"]
    assert (recorded["model"], recorded["price"], recorded["max_concurrency"]) == ("claude-sonnet-5-5", [2.0, 10.0], 4)
    kept = [json.loads(p.read_text()) for p in (run_dir / "llm").glob("*.json")]
    assert sum(k["usage"]["requests"] for k in kept) == len(server.requests)
    assert sum(k["usage"]["cache_read_tokens"] for k in kept) > 0  # the stable prefix was read from the cache
    assert all(r.headers.get("x-api-key") == KEY or KEY in r.headers.get("authorization", "") for r in server.requests)
    status = evolve("status", "--run-dir", str(run_dir), timeout=120).stdout
    spend = {line.split()[0]: line for line in status.splitlines() if line.startswith("  ") and " on " in line}
    assert "1 crash" in spend["mutate"] and "ok" in spend["repair"]  # LLM spend by operator and outcome
    leaked = [p for p in run_dir.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert not leaked and KEY not in result.stdout + result.stderr


@dataclass(frozen=True)
class Resumed:
    """The LLM run above resumed (a copy) with a second server: what the first session left, and the second."""

    run_dir: Path
    before: object  # the archive as the first session left it
    limit: float  # --max-llm-cost of the resumed session, in dollars for the whole run
    result: subprocess.CompletedProcess
    server: Researcher


@pytest.fixture(scope="module")
def resumed(llm_run, tmp_path_factory) -> Resumed:
    """Resumed with room for about three more $0.01 requests in the whole run's LLM budget, one request at a
    time and five more generations than that budget allows."""
    run_dir = shutil.copytree(llm_run.run_dir, tmp_path_factory.mktemp("llm-resumed") / "run")
    before = archive(run_dir)
    limit = float(f"{before.llm_cost_usd.sum() + 0.03:.6f}")
    with Researcher() as second:
        second.crash_first = False
        args = ["--population", "2", "--generations", "8"]
        result = run_with_llm(
            run_dir, second, *args, "--max-llm-cost", str(limit), "--workers", "1", "--lookahead", "0"
        )
    return Resumed(run_dir, before, limit, result, second)


def test_a_resumed_run_tells_the_llm_what_the_last_session_tried(resumed):
    assert resumed.result.returncode == 0, resumed.result.stdout[-3000:] + resumed.result.stderr[-3000:]
    prompt = prompt_text(resumed.server.requests[0])
    assert "## Inspirations" in prompt
    ledger = prompt[prompt.index("## Ledger of ideas") :]
    tried = resumed.before[resumed.before.kind == "child"]
    for row in tried.itertuples():
        assert row.genome_id[:7] in ledger and row.description in ledger
    assert "FAILED (crash: " in ledger and "kept" not in ledger


def test_max_llm_cost_stops_the_run_counting_what_earlier_sessions_spent(resumed):
    result, server = resumed.result, resumed.server
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "--max-llm-cost reached" in result.stdout or "LLM budget" in result.stdout
    earlier = resumed.before.llm_cost_usd.sum()
    left = resumed.limit - earlier
    n = len(server.requests)  # no request once the budget was spent: the last one crossed it
    assert n >= 2 and server.cost(n - 1) < left <= server.cost(n)
    frame = archive(resumed.run_dir)
    with Population.read(resumed.run_dir) as pop:  # a child proposed as the run stopped is billed when it trains
        pending = sum(g.meta["llm"]["cost_usd"] for g in pop.unevaluated() if g.id not in set(frame.genome_id))
    assert abs(frame.llm_cost_usd.sum() + pending - earlier - server.cost()) < 1e-9
    assert (frame.kind == "child").sum() < 16  # stopped well before its eight generations


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
    # the outage covers the proposals made before any child trains (the idle slots plus the lookahead: 3 of
    # them, offline stand-ins); the children proposed after it are the LLM's
    args = ["--population", "2", "--generations", "4", "--workers", "2"]
    with Outage() as server:
        result = run_with_llm(run_dir, server, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "failed 50 times in a row" not in result.stdout + result.stderr
    children = archive(run_dir)
    children = children[children.kind == "child"]
    assert len(children) == 8 and server.refused >= 5
    with Population.read(run_dir) as pop:
        notes = {row.genome_id: " ".join(pop.genome(row.genome_id).changes) for row in children.itertuples()}
    stand_ins = [g for g, text in notes.items() if "offline stand-in for" in text and "LLM outage" in text]
    assert stand_ins and set(children[children.genome_id.isin(stand_ins)].operator) == {"hyperparam"}
    after = children[~children.genome_id.isin(stand_ins)]
    assert (after.operator == "mutate").any()  # the LLM came back once the endpoint answered
