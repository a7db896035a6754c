"""autoresearch scripts as genomes: the `kernels` fallback, the contract check, and real training runs."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from fitness import kernels_fallback, safeload
from fitness.interface import check_genome
from trainer import ScorerProcess, TrainerConfig, run

GENOME = Path(__file__).parent / "genomes" / "autoresearch_cpu.py"
STOP_RULE = "    if step > 10 and total_training_time >= TIME_BUDGET:\n        break\n"
CONFIG = TrainerConfig(threads=2)


def reference_attention(q, k, v, left: int) -> torch.Tensor:
    """Softmax attention written out: query i sees keys i - left .. i (all earlier ones when left < 0)."""
    B, T, H, D = q.shape
    k = k.repeat_interleave(H // k.size(2), dim=2)
    v = v.repeat_interleave(H // v.size(2), dim=2)
    scores = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(D)
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    seen = (j <= i) & ((i - j <= left) | (left < 0))
    weights = scores.masked_fill(~seen, float("-inf")).softmax(-1)
    return torch.einsum("bhij,bjhd->bihd", weights, v)


@pytest.mark.parametrize("left", [-1, 15, 4, 0])
@pytest.mark.parametrize("kv_heads", [4, 2])
def test_fallback_attention_matches_written_out_causal_sliding_window(left, kv_heads):
    gen = torch.Generator().manual_seed(left + 10 * kv_heads)
    q = torch.randn(2, 16, 4, 8, generator=gen)
    k, v = (torch.randn(2, 16, kv_heads, 8, generator=gen) for _ in range(2))
    got = kernels_fallback.flash_attn_func(q, k, v, causal=True, window_size=(left, 0))
    assert got.shape == q.shape
    torch.testing.assert_close(got, reference_attention(q, k, v, left), atol=1e-5, rtol=1e-5)


class _WindowedAttention(torch.nn.Module):
    def __init__(self, kernel):
        super().__init__()
        self.kernel, self.embed = kernel, torch.nn.Embedding(32, 16)

    def forward(self, idx):
        x = self.embed(idx).view(idx.size(0), idx.size(1), 2, 8)
        return self.kernel.flash_attn_func(x, x, x, causal=True, window_size=(3, 0)).flatten(2)


def test_model_using_the_kernels_stand_in_exports_to_a_graph_the_scorer_accepts(capsys):
    kernel = kernels_fallback.get_kernel("kernels-community/flash-attn3").flash_attn_interface
    assert "kernels: fallback flash_attn_func" in capsys.readouterr().out
    with torch.no_grad():
        program = torch.export.export(_WindowedAttention(kernel), (torch.zeros(2, 12, dtype=torch.long),), strict=False)
    safeload.check_graph(program.graph_module)


def test_contract_accepts_an_autoresearch_script_and_names_what_it_misses():
    source = GENOME.read_text()
    assert check_genome(source) is None
    without_eval = source.replace("val_bpb = evaluate_bpb(model, tokenizer, DEVICE_BATCH_SIZE)", "val_bpb = 0.0")
    assert check_genome(without_eval) == "never calls evaluate_bpb()"
    assert "does not `import harness`" in check_genome("print('hello')\n")


@pytest.fixture(scope="module")
def steady(tiny_profile):
    """40 batches of 8 rows (a token budget; time only caps it), so a busy machine trains as long as an idle one."""
    return dataclasses.replace(tiny_profile, budget_tokens=40 * 8 * tiny_profile.seq_len, budget_seconds=60.0)


@pytest.fixture(scope="module")
def scorer():
    process = ScorerProcess()
    yield process
    process.close()


@pytest.mark.slow
def test_autoresearch_genome_is_stopped_at_the_harness_budget_and_scored_as_it_stands(steady, scorer):
    """The script's own clock (TIME_BUDGET, 60 s here) never runs out: the harness's 40 batches end it."""
    result = run(GENOME.read_text(), steady, seed=0, config=CONFIG, scorer=scorer)
    assert result.status == "ok", result.reason
    assert math.isfinite(result.val_bpb) and result.val_bpb < math.log2(steady.vocab_size)
    assert result.tokens == steady.budget_tokens and result.num_params > 0, (result.tokens, result.num_params)
    assert "kernels: fallback flash_attn_func" in result.log_tail, result.log_tail
    assert "training budget is spent; scoring `model` as it stands" in result.log_tail, result.log_tail
    assert "val_bpb:" not in result.log_tail  # the script was ended before its summary


@pytest.mark.slow
def test_script_that_stops_itself_is_scored_through_evaluate_bpb_which_returns_nan(steady, scorer):
    early = GENOME.read_text().replace(STOP_RULE, "    if step >= 3:\n        break\n")
    result = run(early, steady, seed=0, config=CONFIG, scorer=scorer)
    assert result.status == "ok", result.reason
    assert math.isfinite(result.val_bpb)
    assert "evaluate_bpb: model handed to the harness" in result.log_tail
    assert "val_bpb:          nan" in result.log_tail


@pytest.mark.slow
def test_script_asking_for_validation_batches_is_refused(steady, scorer):
    peeking = GENOME.read_text().replace(
        "x, y, epoch = next(train_loader)\n", 'next(make_dataloader(tokenizer, 1, 8, "val"))\n', 1
    )
    result = run(peeking, steady, seed=0, config=CONFIG, scorer=scorer)
    assert result.status == "crash"
    assert "split 'val' is refused" in result.reason
