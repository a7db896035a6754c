"""`python -m evolve export-autoresearch GENOME --run-dir D [--out FILE]`: a genome as autoresearch's train.py.

A genome written against autoresearch's API (`from prepare import ...`) is written out as it is. A genome
written against evolve's harness gets a preamble that builds a `harness` module on autoresearch's own
prepare.py: batches come from `make_dataloader(..., "train")`, the clock is autoresearch's (first 10
batch requests untimed for torch.compile, then TIME_BUDGET seconds), and `harness.submit(model)` scores
the model with autoresearch's `evaluate_bpb` through a wrapper that turns logits into the per-token loss
it asks for, then prints autoresearch's `---` summary. The result runs with `uv run train.py` in an
autoresearch checkout, where its score is autoresearch's.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from evolve.cli import UsageError
from evolve.runview import open_run, resolve
from fitness.interface import uses_prepare

PREAMBLE = '''\
# --- evolve's harness on autoresearch's prepare.py (written by `evolve export-autoresearch`) ----------
import math as _math
import sys as _sys
import time as _time
import types as _types

import torch as _torch
import torch.nn.functional as _F

from prepare import MAX_SEQ_LEN, TIME_BUDGET, Tokenizer, evaluate_bpb, make_dataloader

_UNTIMED_REQUESTS = 10  # batch requests before the clock starts: torch.compile's warm-up


class _LossOfLogits(_torch.nn.Module):
    """model(idx) -> logits, seen as autoresearch's model(idx, targets, reduction) -> loss."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, idx, targets=None, reduction="mean"):
        logits = self.model(idx)
        if targets is None:
            return logits
        flat = logits.float().reshape(-1, logits.size(-1))
        return _F.cross_entropy(flat, targets.reshape(-1), ignore_index=-1, reduction=reduction)


def _make_harness():
    h = _types.ModuleType("harness")
    tokenizer = Tokenizer.from_directory()
    on_cuda = _torch.cuda.is_available()
    h.profile, h.seed, h.seq_len, h.budget_seconds = "h100", 0, MAX_SEQ_LEN, TIME_BUDGET
    h.device = _torch.device("cuda" if on_cuda else "cpu")
    h.vocab_size, h.bos_id = tokenizer.get_vocab_size(), tokenizer.get_bos_token_id()
    clock = dict(requests=0, start=None, began=_time.time(), steps=0)

    def elapsed():
        return 0.0 if clock["start"] is None else _time.time() - clock["start"]

    def batches(batch_size, length=None):
        loader = make_dataloader(tokenizer, batch_size, length or MAX_SEQ_LEN, "train")
        while True:
            if on_cuda:
                _torch.cuda.synchronize()
            clock["requests"] += 1
            if clock["requests"] > _UNTIMED_REQUESTS and clock["start"] is None:
                clock["start"] = _time.time()
            if elapsed() >= TIME_BUDGET:
                return
            x, y, _ = next(loader)
            yield x, y

    def report(step, loss):
        clock["steps"] = max(clock["steps"], int(step) + 1)
        if not _math.isfinite(float(loss)) or float(loss) > 100:
            print("FAIL")
            _sys.exit(1)

    def submit(model):
        training_seconds = elapsed()
        model.eval()
        with _torch.autocast("cuda", dtype=_torch.bfloat16, enabled=on_cuda):
            val_bpb = evaluate_bpb(_LossOfLogits(model), tokenizer, 32)
        memory = _torch.cuda.max_memory_allocated() / 2**20 if on_cuda else 0.0
        print("---")
        print(f"val_bpb:          {val_bpb:.6f}")
        print(f"training_seconds: {training_seconds:.1f}")
        print(f"total_seconds:    {_time.time() - clock['began']:.1f}")
        print(f"peak_vram_mb:     {memory:.1f}")
        print(f"num_steps:        {clock['steps']}")
        print(f"num_params_M:     {sum(p.numel() for p in model.parameters()) / 1e6:.1f}")

    h.batches, h.report, h.submit = batches, report, submit
    h.progress = lambda: min(1.0, elapsed() / TIME_BUDGET)
    return h


_sys.modules["harness"] = _make_harness()
# --- the genome ------------------------------------------------------------------------------------------
'''


def main(args: argparse.Namespace) -> int:
    with open_run(args.run_dir) as pop:
        genome = resolve(pop, args.genome)
    text = to_autoresearch(genome.source)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.out).write_text(text)
    except OSError as e:
        raise UsageError(f"cannot write {args.out!r}: {e.strerror or e}") from None
    print(f"wrote {args.out}: genome {genome.short_id} as an autoresearch train.py", file=sys.stderr)
    return 0


def to_autoresearch(source: str) -> str:
    """The genome as a train.py for autoresearch: unchanged if it already imports prepare."""
    return source if uses_prepare(ast.parse(source)) else PREAMBLE + source
