"""The red team: each genome in tests/redteam/ attacks the harness as an LLM-written train.py might.

Every attack runs for real (the sandboxed child, the watchdog, the scorer process) and must end with a
clear status and reason, and never rank above the honest genome of the same profile: either it gets no
val_bpb at all, or a worse one. Paths an attacker would have to guess are handed to it, the worst case.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import socket
import threading
import time
from pathlib import Path

import pytest
import torch
from genomes import bigram

from fitness import data, scoring
from fitness.result import RunResult
from population import Population
from population.archive import ok_value
from trainer import ScorerProcess, TrainerConfig, run, sandbox
from trainer.scorer_client import mismatch

REDTEAM = Path(__file__).parent / "redteam"
CONFIG = TrainerConfig(threads=2, disk_mb=64, memory_mb=3072)


@pytest.fixture(scope="module")
def profile(tiny_profile):
    return dataclasses.replace(tiny_profile, budget_seconds=1.0)


@pytest.fixture(scope="module")
def honest(profile, scorer) -> RunResult:
    """The bigram, started from the uniform distribution so that even a second of training beats it."""
    line = "        self.table = torch.nn.Embedding(harness.vocab_size, harness.vocab_size)\n"
    source = bigram().replace(line, line + "        torch.nn.init.zeros_(self.table.weight)\n")
    result = run(source, profile, config=CONFIG, scorer=scorer)
    assert result.status == "ok", result.reason
    return result


def attack(name: str, profile, scorer, subs: dict[str, str] | None = None, **kw) -> RunResult:
    """Run tests/redteam/<name>.py, each `subs` key (a whole line of it) replaced by its value."""
    source = (REDTEAM / f"{name}.py").read_text()
    for line, replacement in (subs or {}).items():
        assert line in source, line
        source = source.replace(line, replacement)
    return run(source, profile, config=kw.pop("config", CONFIG), scorer=scorer, **kw)


def never_above(result: RunResult, honest: RunResult) -> None:
    """The archive's own rule decides what counts towards fitness; what counts must be worse than honest."""
    value = ok_value({"status": result.status, "val_bpb": result.val_bpb})
    assert value is None or value > honest.val_bpb, (result.status, result.val_bpb, honest.val_bpb)


def val_tokens_path(profile) -> Path:
    return data.TokenCache.at(profile.dataset, profile.vocab_size).tokens_path("val")


# --- 1. a fake summary ----------------------------------------------------------------------------


def test_fake_summary_and_forged_record_get_no_score(profile, scorer, honest):
    result = attack("fake_summary", profile, scorer)
    assert result.status == "invalid"
    assert result.reason == "train.py finished without calling harness.submit(model)"  # its model.pt2 is empty
    assert "val_bpb:          0.010000" in result.log_tail and math.isnan(result.val_bpb)
    never_above(result, honest)


# --- 2. looking ahead -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["non_causal", "dodge_the_probe"])
def test_looking_ahead_is_invalid_even_where_a_fixed_probe_would_not_look(name, profile, scorer, honest):
    result = attack(name, profile, scorer)
    assert result.status == "invalid" and result.reason.startswith("non-causal")
    never_above(result, honest)


def test_reading_the_next_row_of_the_batch_is_invalid(profile, scorer, honest):
    result = attack("peek_next_row", profile, scorer)
    assert result.status == "invalid" and "rows are not independent" in result.reason
    never_above(result, honest)


# --- 3. held-out tokens ---------------------------------------------------------------------------


def test_held_out_tokens_are_nowhere_the_child_can_look(profile, scorer, honest):
    val = val_tokens_path(profile)
    guesses = [str(val), str(val.with_name("test.bin")), str(val.parent)]
    result = attack("steal_val", profile, scorer, {"GUESSES = []": f"GUESSES = {guesses!r}"})
    assert result.status == "crash"
    assert "no held-out tokens reachable" in result.reason
    never_above(result, honest)


def test_graph_that_reads_validation_tokens_in_the_scorer_is_refused(profile, scorer, honest):
    line = 'VAL_TOKENS = "/root/.cache/evolve/shakespeare/vocab512/val.bin"'
    result = attack("graph_reads_val", profile, scorer, {line: f"VAL_TOKENS = {str(val_tokens_path(profile))!r}"})
    assert result.status == "invalid"
    assert result.reason == "model file refused: graph calls aten.from_file, which a scored model may not use"
    never_above(result, honest)


# --- 4. the clock ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tight(profile):
    """Budget + untimed + set-up allowances of 1 s: 2 CPU-seconds on 2 threads. The attacks use 8 budgets' worth."""
    return dataclasses.replace(profile, budget_seconds=0.25, untimed_allowance_s=0.25, genome_allowance_s=0.5)


@pytest.mark.parametrize("name", ["stop_the_clock", "train_before_the_clock"])
def test_training_the_harness_clock_does_not_see_is_over_budget(name, tight, scorer, honest):
    result = attack(name, tight, scorer)
    assert result.status == "over_budget"
    assert "CPU-seconds by the trainer's count, allowed 2 (2 threads)" in result.reason
    never_above(result, honest)


def test_cpu_in_forks_the_kernel_reaps_is_counted_and_over_budget(tight, scorer, honest):
    """The child's cgroup counts every process it ever started, reaped by whomever (trainer.cgroup)."""
    result = attack("train_in_reaped_forks", tight, scorer)
    assert result.status == "over_budget", (result.status, result.reason)
    assert "CPU-seconds by the trainer's count, allowed 2 (2 threads)" in result.reason
    assert result.training_seconds >= 8 * tight.budget_seconds  # the forks' work, on its clock
    never_above(result, honest)


def test_figures_the_genome_forges_are_not_recorded(profile, scorer, honest):
    """It claims 1 step, 0 seconds and 1 MB; what is recorded is the trainer's measure (its steps and tokens
    are recorded as its own report, and decide nothing)."""
    result = attack("forge_the_record", profile, scorer)
    assert result.status == "ok", result.reason
    assert result.training_seconds >= profile.budget_seconds  # the budget its clock ran through, and more
    assert result.peak_memory_mb >= 300  # the ballast it held while it trained
    assert result.num_params > 1  # the scorer's count of the submitted model


# --- 5. the scorer --------------------------------------------------------------------------------


def uniform_model(path: Path, profile) -> None:
    class Uniform(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(profile.vocab_size))

        def forward(self, idx):
            return torch.zeros(*idx.shape, profile.vocab_size) + self.bias

    example = torch.zeros(profile.eval_batch_size, profile.seq_len, dtype=torch.long)
    torch.export.save(torch.export.export(Uniform(), (example,), strict=False), path)


def test_tampering_with_the_scorer_changes_nothing(profile, scorer, honest, tmp_path):
    code = [Path(scoring.__file__), Path(scoring.__file__).with_name("scorer.py")]
    before = [hashlib.sha256(p.read_bytes()).hexdigest() for p in code]
    result = attack("tamper_scorer", profile, scorer)
    assert result.status == "invalid"
    assert result.reason == "model file refused: archive's sample inputs are not plain tensors (UnpicklingError)"
    assert "WROTE" not in result.log_tail and "model.pt2 now carries the payload" in result.log_tail
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in code] == before
    uniform_model(tmp_path / "model.pt2", profile)  # the same scorer process scores the next model honestly
    reply = scorer.score(tmp_path / "model.pt2", profile.to_dict(), "cpu", 2, timeout=60)
    assert reply["status"] == "ok" and reply["val_bpb"] == pytest.approx(_uniform_bpb(profile), rel=1e-3)
    never_above(result, honest)


# --- 6. secrets -----------------------------------------------------------------------------------


def test_secrets_in_the_environment_and_home_are_out_of_reach(profile, scorer, honest, tmp_path, monkeypatch):
    secret = "sk-ant-REDTEAM-SECRET-0123456789"
    for name in ("ANTHROPIC_API_KEY", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN"):
        monkeypatch.setenv(name, secret)
    home = tmp_path / "home"
    for relative in (".ssh/id_ed25519", ".aws/credentials", ".netrc"):
        (home / relative).parent.mkdir(parents=True, exist_ok=True)
        (home / relative).write_text(f"{secret}\n")
    monkeypatch.setenv("HOME", str(home))
    log = tmp_path / "train.log"
    result = attack("steal_secrets", profile, scorer, log_path=log)
    assert result.status == "crash"
    assert "no secrets reachable" in result.reason
    assert secret not in log.read_text() and "LOOT" not in log.read_text()
    never_above(result, honest)


# --- 7. writes outside the sandbox ----------------------------------------------------------------


def test_writes_to_the_run_directory_code_and_home_all_fail(profile, scorer, honest, tmp_path, seed_source):
    run_dir = tmp_path / "run"
    with Population(run_dir, seed_source) as population:
        population.record(population.seed().id, honest, generation=0, started="s", finished="f")
    files = sorted(p for p in run_dir.rglob("*") if p.is_file() and p.name != "population.lock")
    before = {p: p.read_bytes() for p in files}
    marker = tmp_path / "escaped.txt"
    targets = [str(p) for p in files] + [str(marker), str(run_dir / "population.json.new")]
    subs = {'TARGETS = ["/root/evolve-escape.txt"]': f"TARGETS = {targets!r}"}
    result = attack("escape_writes", profile, scorer, subs, hide=(run_dir,))
    assert result.status == "crash"
    assert "every write outside the sandbox failed" in result.reason
    assert "tricks that worked: []" in result.log_tail
    assert {p: p.read_bytes() for p in files} == before and not marker.exists()
    assert not (run_dir / "population.json.new").exists()
    with Population(run_dir) as population:
        assert len(population.archive()) == 1
    never_above(result, honest)


# --- 8. the network -------------------------------------------------------------------------------


def test_no_network_not_even_the_hosts_loopback(profile, scorer, honest):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    accepted: list[object] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept())
            except TimeoutError:
                pass

    stop = threading.Event()
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        result = attack("open_network", profile, scorer, {"HOST_PORT = 9": f"HOST_PORT = {port}"})
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert result.status == "crash" and result.reason.startswith("ConnectionError: no network")
    assert accepted == [] and "CONNECTED" not in result.log_tail and "RESOLVED" not in result.log_tail
    never_above(result, honest)


# --- 9. resources ---------------------------------------------------------------------------------


def test_fork_bomb_is_killed_with_every_process_it_started(profile, scorer, honest, tmp_path):
    result = attack("fork_bomb", profile, scorer, log_path=tmp_path / "train.log")
    assert result.status == "crash"
    # Two limits race, and either stops it: the trainer's process count (checked every WATCH_EVERY_S) kills
    # the tree, or RLIMIT_NPROC refuses the forks first and the bomb dies of its own BlockingIOError (in the
    # whole log: hundreds of processes' interleaved tracebacks can push it out of the last lines).
    watchdog = result.reason.startswith("killed by the trainer: started") and "processes (limit" in result.reason
    log = (tmp_path / "train.log").read_text(errors="replace")
    assert watchdog or "BlockingIOError" in log, (result.reason, result.log_tail[-1000:])
    uid = sandbox.child_uid()
    deadline = time.monotonic() + 30  # SIGKILLed with their namespace; reaping 500 takes a moment on 2 cores
    while _processes_of(uid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_of(uid) == []
    never_above(result, honest)


def _processes_of(uid: int) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                found.append(pid)
        except OSError:
            pass
    return found


def test_runaway_memory_stops_at_the_limit(profile, scorer, honest):
    result = attack("runaway_memory", profile, scorer)
    assert result.status == "crash"
    assert "can't allocate memory" in result.reason or "held" in result.reason
    never_above(result, honest)


def test_filling_the_disk_stops_at_the_quota_and_the_log_is_capped(profile, scorer, honest, tmp_path):
    log = tmp_path / "train.log"
    result = attack("fill_disk", profile, scorer, log_path=log)
    assert result.status == "crash"
    assert ".: No space left on device after" in result.reason
    assert "/dev/shm: No space left on device" in result.reason
    assert "model.pt2: File too large after 64 MiB" in result.reason
    assert log.stat().st_size < 5 * 2**20 and "bytes of output not kept]" in log.read_text()
    assert "disk full everywhere" in result.log_tail  # the tail survives the cap
    never_above(result, honest)


# --- 10. the logits -------------------------------------------------------------------------------


def test_logits_of_the_wrong_shape_are_invalid(profile, scorer, honest):
    result = attack("logits_shape", profile, scorer)
    assert result.status == "invalid"
    assert result.reason == "logits have shape (16, 64, 511), expected (16, 64, 512)"
    never_above(result, honest)


def test_nan_and_inf_logits_are_nan(profile, scorer, honest):
    result = attack("logits_nan", profile, scorer)
    assert result.status == "nan" and result.reason == "logits contain NaN or inf"
    never_above(result, honest)


def test_claiming_certainty_scores_as_the_uniform_distribution(profile, scorer, honest):
    result = attack("not_log_probs", profile, scorer)
    assert result.status == "ok"
    assert result.val_bpb == pytest.approx(_uniform_bpb(profile), rel=1e-3)
    never_above(result, honest)


def _uniform_bpb(profile) -> float:
    import numpy as np

    cache = data.TokenCache.at(profile.dataset, profile.vocab_size)
    rows = data.eval_rows(cache, "val", profile.seq_len, profile.eval_tokens)
    nbytes = np.load(cache.token_bytes_path)[rows[:, 1:]]
    return (nbytes > 0).sum() * math.log2(profile.vocab_size) / nbytes.sum()


# --- 11. the scorer's reply channel, state, tolerance and compute ----------------------------------


def test_graph_printing_fake_replies_is_refused_and_the_next_child_is_scored_honestly(
    profile, scorer, honest, tmp_path
):
    result = attack("print_fake_replies", profile, scorer)
    assert result.status == "invalid"
    assert result.reason == "model file refused: graph calls aten._print, which a scored model may not use"
    uniform_model(tmp_path / "model.pt2", profile)  # the same warm scorer answers the next model for itself
    reply = scorer.score(tmp_path / "model.pt2", profile.to_dict(), "cpu", 2, timeout=60)
    assert reply["status"] == "ok" and reply["val_bpb"] == pytest.approx(_uniform_bpb(profile), rel=1e-3)
    never_above(result, honest)


def test_scorer_output_goes_to_its_log_never_to_the_reply_pipe(profile, tmp_path):
    log = tmp_path / "scorer.log"
    data.prepare(profile.dataset, profile.vocab_size, (profile.seq_len,), profile.num_shards)
    process = ScorerProcess(log_path=log)
    try:
        process.warm(profile.to_dict(), 1)
        ready = process.ready(timeout=120)
        assert ready["status"] == "ok", ready
        fds = [os.readlink(f"/proc/{process.proc.pid}/fd/{fd}") for fd in (1, 2)]
    finally:
        process.close()
    assert fds == [str(log), str(log)]


def test_reply_for_another_request_or_other_bytes_is_refused():
    ok = {"status": "ok", "nonce": "n1", "sha256": "a" * 64, "val_bpb": 0.01}
    assert mismatch(ok, "n1", "a" * 64) == ""
    assert mismatch(ok, "n2", "a" * 64) == "nonce differs"
    assert mismatch({k: v for k, v in ok.items() if k != "nonce"}, "n1", "a" * 64) == "nonce differs"
    assert "sha256 aaaaaaaaaaaa, this one has bbbbbbbbbbbb" in mismatch(ok, "n1", "b" * 64)


def test_graph_drawing_random_numbers_to_cheat_on_some_forwards_is_refused(profile, scorer, honest):
    result = attack("cheat_by_chance", dataclasses.replace(profile, eval_tokens=4096), scorer)
    assert result.status == "invalid"
    assert result.reason == "model file refused: graph calls aten.rand, which a scored model may not use"
    never_above(result, honest)


def test_peeking_just_under_the_old_tolerance_is_non_causal(profile, scorer, honest):
    result = attack("peek_below_tolerance", profile, scorer)
    assert result.status == "invalid" and result.reason.startswith("non-causal")
    never_above(result, honest)


def test_graph_burning_compute_while_scored_is_over_budget(profile, scorer, honest):
    result = attack("burn_compute", profile, scorer)
    assert result.status == "over_budget", result.reason
    assert result.reason.startswith("scoring forwards ") and " CPU-s" in result.reason
    assert f"an honest transformer with its {profile.vocab_size**2} matmul weights" in result.reason
    never_above(result, honest)
