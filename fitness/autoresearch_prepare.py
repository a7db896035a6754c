"""The `prepare` module an autoresearch train.py imports, served by evolve's harness inside the sandbox.

Loaded as `prepare` by fitness.autoresearch_compat when the genome first imports it (the harness has
started by then), so such a script runs unmodified:
- `MAX_SEQ_LEN` and `TIME_BUDGET` are the profile's sequence length and training budget;
- `Tokenizer.from_directory()` is evolve's tokenizer for the profile (the directory argument is ignored);
- `make_dataloader(tokenizer, B, T, "train")` yields `(x, y, epoch)` from the harness's batch stream,
  on the harness's device; "val" is refused: the genome never sees held-out tokens;
- `evaluate_bpb(model, ...)` hands `model` to the harness for export and returns nan: the val_bpb
  recorded for the genome is the trusted scorer's, computed in another process.

Who owns the clock: the harness. The script may time itself and stop early, but when the harness's
budget is spent the train loader stops serving: the script's global `model` is handed over as it stands
(the compiled wrapper unwrapped) and the script is ended there, its summary unprinted. Compilation: on
CPU, torch.compile becomes a passthrough once this module is imported (inductor would need a C++
toolchain and spend the budget compiling); on CUDA it stays, and its warm-up is what the profile's
untimed steps cover. The export always traces the uncompiled module, inside autocast when the model
trains under it (see _for_export).
"""

from __future__ import annotations

import sys

import torch

from fitness import autoresearch_compat, harness, tokenizer

MAX_SEQ_LEN = harness.seq_len
TIME_BUDGET = int(harness.budget_seconds) if float(harness.budget_seconds).is_integer() else harness.budget_seconds


def _passthrough(model=None, **options):
    """torch.compile(model, ...) or @torch.compile(...): the model or function itself, uncompiled."""
    return model if model is not None else (lambda fn: fn)


if harness.device.type == "cpu":
    torch.compile = _passthrough
    print("prepare: evolve's harness; torch.compile is a passthrough on CPU; the harness owns clock and score")
else:
    print("prepare: evolve's harness; the harness owns the clock and the score")


class Tokenizer:
    """autoresearch's tokenizer interface over evolve's tokenizer (tiktoken, BOS as the last id)."""

    def __init__(self, encoding=None):
        self.encoding = encoding

    @classmethod
    def from_directory(cls, tokenizer_dir=None) -> Tokenizer:
        source = autoresearch_compat.tokenizer_file
        if source is None:
            return cls(None)
        source.seek(0)
        return cls(tokenizer.loads(source.read()))

    def get_vocab_size(self) -> int:
        return harness.vocab_size

    def get_bos_token_id(self) -> int:
        return harness.bos_id

    def encode(self, text, prepend: int | None = None, num_threads: int = 8):
        """Token ids of a string, or a list of id lists for a list of strings; `prepend` goes first."""
        head = [] if prepend is None else [int(prepend)]
        if isinstance(text, str):
            return head + self._encoding().encode_ordinary(text)
        if isinstance(text, list):
            return [head + ids for ids in self._encoding().encode_ordinary_batch(text, num_threads=num_threads)]
        raise ValueError(f"encode takes a str or a list of str, got {type(text).__name__}")

    def decode(self, ids) -> str:
        return self._encoding().decode(list(ids))

    def _encoding(self):
        if self.encoding is None:
            raise RuntimeError("the harness gave this sandbox no tokenizer file; only sizes and BOS are known")
        return self.encoding


def make_dataloader(tokenizer, B: int, T: int, split: str, buffer_size: int = 1000):
    """(x, y, epoch) training batches of shape (B, T) until the harness's budget is spent."""
    if split != "train":
        raise ValueError(f"make_dataloader: split {split!r} is refused; a genome trains on 'train' only")
    return _train_batches(int(B), int(T))


def _train_batches(B: int, T: int):
    for x, y in harness.batches(B, T):
        yield x, y, 1 + harness._session.sampler.epoch
    _budget_spent()


def _budget_spent() -> None:
    model = getattr(sys.modules.get("__main__"), "model", None)
    if not isinstance(model, torch.nn.Module):
        print("prepare: the harness's budget is spent and train.py has no global `model` to score")
        raise SystemExit(1)
    print("prepare: the harness's training budget is spent; scoring `model` as it stands; train.py ends here")
    harness.submit(_for_export(model))
    raise SystemExit(0)


def evaluate_bpb(model, tokenizer, batch_size) -> float:
    """Hands `model` to the harness's scorer; returns nan, which nothing will take for a score."""
    harness.submit(_for_export(model))
    print("evaluate_bpb: model handed to the harness; the recorded val_bpb is its scorer's, not this line's")
    return float("nan")


def _for_export(model: torch.nn.Module) -> torch.nn.Module:
    """The uncompiled model, inside autocast when it trains under autocast: when the caller is in an
    autocast region (evaluate_bpb in autoresearch's `with autocast_ctx:`), or when its weights mix float32
    with a 16-bit type (bf16 embeddings), which only run together under autocast. The region must be
    inside the exported forward: an export merely run under autocast records no casts."""
    model = getattr(model, "_orig_mod", model)
    kind = harness.device.type
    if torch.is_autocast_enabled(kind):
        return _Autocast(model, kind, torch.get_autocast_dtype(kind))
    low = {p.dtype for p in model.parameters()} & {torch.bfloat16, torch.float16}
    if low and any(p.dtype == torch.float32 for p in model.parameters()):
        return _Autocast(model, kind, low.pop())
    return model


class _Autocast(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, device_type: str, dtype: torch.dtype):
        super().__init__()
        self.model, self.device_type, self.dtype = model, device_type, dtype

    def forward(self, idx):
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.model(idx).float()
