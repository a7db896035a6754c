"""The trainer's side of the scorer (trainer/scorer_client.py): how long it waits for a reply, on which clock."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from fitness import data
from trainer import ScorerProcess


@pytest.fixture()
def warm_scorer(tiny_profile):
    data.prepare(tiny_profile.dataset, tiny_profile.vocab_size, (tiny_profile.seq_len,), tiny_profile.num_shards)
    scorer = ScorerProcess()
    scorer.warm(tiny_profile.to_dict(), 1)
    assert scorer.ready(timeout=300)["status"] == "ok"
    yield scorer
    scorer.close()


def _score_missing_file(scorer: ScorerProcess, tiny_profile, tmp_path) -> str:
    request = {"program": str(tmp_path / "missing.pt2"), "profile": tiny_profile.to_dict(), "device": "cpu"}
    return scorer.send({**request, "threads": 1})


def test_a_starved_scorer_is_waited_for_past_its_cpu_timeout(warm_scorer, tiny_profile, tmp_path):
    # A stopped process uses no CPU, as a scorer on a machine busy with other work barely does: on the CPU
    # clock it is not killed when the wall clock passes its timeout, and its reply still comes.
    pid = warm_scorer.proc.pid
    os.kill(pid, signal.SIGSTOP)
    nonce = _score_missing_file(warm_scorer, tiny_profile, tmp_path)
    threading.Timer(3.0, os.kill, (pid, signal.SIGCONT)).start()
    started = time.monotonic()
    reply = warm_scorer.receive(1.0, nonce, cpu_clock=True)
    assert time.monotonic() - started >= 2.5
    assert "took longer" not in reply["reason"] and "could not be loaded" in reply["reason"], reply
    assert warm_scorer.proc is not None and warm_scorer.proc.poll() is None  # the same process, still warm


def test_on_the_wall_clock_a_scorer_that_does_not_answer_is_killed(warm_scorer, tiny_profile, tmp_path):
    os.kill(warm_scorer.proc.pid, signal.SIGSTOP)
    nonce = _score_missing_file(warm_scorer, tiny_profile, tmp_path)
    reply = warm_scorer.receive(0.5, nonce, cpu_clock=False)
    assert reply["status"] == "invalid" and "s wall clock" in reply["reason"], reply
    assert warm_scorer.proc is None  # killed: the next request starts a fresh one


def test_a_scorer_past_its_cpu_seconds_is_killed(tiny_profile):
    scorer = ScorerProcess()
    try:
        scorer.warm(tiny_profile.to_dict(), 1)  # a cold start imports torch: well over 0.2 CPU-seconds
        reply = scorer.receive(0.2, scorer.pending_warm.pop(0), cpu_clock=True)
        assert reply["status"] == "invalid" and reply["reason"] == "scoring took longer than 0.2 CPU-seconds"
        assert scorer.proc is None
    finally:
        scorer.close()
