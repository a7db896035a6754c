"""autoresearch scripts as genomes: the `kernels` fallback, the contract check, and real training runs."""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import sys
from pathlib import Path

import pytest
import torch

from fitness import kernels_fallback, safeload
from fitness.interface import check_genome
from trainer import TrainerConfig, run

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


FAKE_KERNELS = """
from types import SimpleNamespace

def get_kernel(repo_id):
    if repo_id != "cached/flash":
        raise FileNotFoundError(f"{repo_id} is not in the local cache")
    return SimpleNamespace(flash_attn_interface=SimpleNamespace(flash_attn_func=None))
"""


@pytest.fixture
def installed_kernels(tmp_path, monkeypatch):
    """A stand-in for the real `kernels` package on sys.path: it has "cached/flash" and nothing else."""
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "__init__.py").write_text(FAKE_KERNELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "kernels", kernels_fallback)  # as fitness.autoresearch_compat has it
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")


def test_installed_kernels_package_is_used_for_a_cached_kernel_but_never_for_export_or_cpu(installed_kernels, capsys):
    kernel = kernels_fallback.get_kernel("cached/flash").flash_attn_interface
    assert capsys.readouterr().out.startswith("kernels: cached/flash from the local cache")
    assert kernel.real is not None and os.environ["HF_HUB_OFFLINE"] == "1"
    assert sys.modules["kernels"] is kernels_fallback  # the real package stood in only while it loaded
    q = torch.randn(1, 4, 2, 8)
    expected = kernels_fallback.flash_attn_func(q, q, q, causal=True)
    torch.testing.assert_close(kernel.flash_attn_func(q, q, q, causal=True), expected)  # CPU: the fallback


def test_kernel_missing_from_the_local_cache_falls_back_and_says_why(installed_kernels, capsys):
    kernel = kernels_fallback.get_kernel("varunneal/flash-attention-3").flash_attn_interface
    assert kernel.real is None
    line = capsys.readouterr().out.strip()
    assert line == (
        "kernels: fallback flash_attn_func on scaled_dot_product_attention "
        "(varunneal/flash-attention-3 is not usable from the local cache: FileNotFoundError)"
    )


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


@pytest.fixture
def prepare_module(monkeypatch):
    """fitness/autoresearch_prepare.py loaded in this process (harness not started), torch.compile kept."""
    monkeypatch.setattr(torch, "compile", torch.compile)
    return importlib.import_module("fitness.autoresearch_prepare")


class _MixedPrecision(torch.nn.Module):
    """bf16 embeddings and a float32 head, as autoresearch casts them: runs only under autocast."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(32, 16).to(torch.bfloat16)
        self.head = torch.nn.Linear(16, 32)

    def forward(self, idx):
        return self.head(self.embed(idx))


def test_mixed_precision_model_is_exported_with_its_autocast_inside_the_graph(prepare_module):
    model, idx = _MixedPrecision(), torch.randint(0, 32, (2, 8))
    with pytest.raises(RuntimeError):
        model(idx)  # what the scorer would hit with the plain graph
    wrapped = prepare_module._for_export(model)
    with torch.no_grad():
        program = torch.export.export(wrapped, (idx,), strict=False)
    safeload.check_graph(program.graph_module)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = model(idx).float()
    torch.testing.assert_close(program.module()(idx), expected)


def test_float32_model_is_exported_as_it_is(prepare_module):
    model = torch.nn.Linear(4, 4)
    assert prepare_module._for_export(model) is model
    assert prepare_module._for_export(torch.compile(model)) is model


@pytest.mark.slow
def test_script_that_stops_itself_is_scored_through_evaluate_bpb_which_returns_nan(steady, scorer):
    """...with bf16 embeddings and autocast around its forwards and evaluate_bpb, as autoresearch has them."""
    early = GENOME.read_text().replace(STOP_RULE, "    if step >= 3:\n        break\n")
    early = early.replace("num_params = ", "model.wte.to(dtype=torch.bfloat16)\nnum_params = ", 1)
    early = early.replace(
        "        loss = model(x, y)\n",
        "        with torch.autocast('cpu', dtype=torch.bfloat16):\n            loss = model(x, y)\n",
    )
    early = early.replace(
        "val_bpb = evaluate_bpb(", "with torch.autocast('cpu', dtype=torch.bfloat16):\n    val_bpb = evaluate_bpb("
    )
    early = early.replace(
        "with torch.no_grad():\n    idx", "with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):\n    idx"
    )
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
