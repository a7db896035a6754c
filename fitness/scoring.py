"""The score: bits per byte from a model's logits, and the contract checks that come before it.

val_bpb = sum of per-token cross-entropy (nats) / (ln 2 * sum of UTF-8 bytes of the target tokens),
with special tokens (BOS) excluded from both sums. The harness applies log_softmax itself, so any
finite logits are a valid distribution; the model never sees a target it is being scored on.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import torch

Forward = Callable[[torch.Tensor], torch.Tensor]
CAUSALITY_ATOL = 1e-2  # nats; bf16 kernels agree far better than this on an unchanged prefix


class ContractError(ValueError):
    """The handed-over model breaks the contract: status and one-line reason."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status


def nats_and_bytes(logits: torch.Tensor, targets: torch.Tensor, token_bytes: torch.Tensor) -> tuple[float, int]:
    """Summed cross-entropy (nats) and summed target bytes, special tokens excluded."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    nbytes = token_bytes[targets]
    counted = nbytes > 0
    return float(nll[counted].double().sum()), int(nbytes.sum())


def bits_per_byte(nats: float, nbytes: int) -> float:
    return nats / (math.log(2) * nbytes)


def check_logits(logits: torch.Tensor, batch: int, seq_len: int, vocab_size: int) -> None:
    if not isinstance(logits, torch.Tensor):
        raise ContractError("invalid", f"model returned {type(logits).__name__}, expected a logits tensor")
    if tuple(logits.shape) != (batch, seq_len, vocab_size):
        raise ContractError(
            "invalid", f"logits have shape {tuple(logits.shape)}, expected {(batch, seq_len, vocab_size)}"
        )
    low, high = torch.aminmax(logits)  # NaN propagates into both; one pass, no [B, T, V] mask (20x faster)
    if not (torch.isfinite(low) and torch.isfinite(high)):
        raise ContractError("nan", "logits contain NaN or inf")


def check_causal(forward: Forward, x: torch.Tensor, vocab_size: int, count: int, seed: int | None = None) -> None:
    """Rows must be independent and every prediction causal, probed with cuts and rows drawn afresh for each
    model (from `seed`, or from the OS when None) so that a graph cannot know which positions are checked.

    Independence: a random half of the rows keep their tokens while the others are replaced; the kept rows'
    predictions must not move at any position (a row cannot read another, e.g. the next row, which holds its
    continuation). Causality: `count` probe forwards in which every row k gets new tokens after its own random
    cut t_k (the cuts run through the positions without repeats); its predictions at positions <= t_k must
    not move. A graph that peeks ahead at a fraction f of the positions survives with probability about
    (1 - f) ** (count * rows)."""
    if x.size(0) < 2:
        raise ValueError("the causality probe needs a batch of at least 2 rows")
    seed = int.from_bytes(os.urandom(8), "little") if seed is None else seed
    generator = torch.Generator().manual_seed(seed)
    logits = forward(x)
    check_logits(logits, x.size(0), x.size(1), vocab_size)  # a clear reason for bad logits, before any comparison
    base = torch.log_softmax(logits.float(), dim=-1)
    _check_independent(forward, x, base, vocab_size, generator)
    rows, length = x.shape
    cuts = torch.randperm(length - 1, generator=generator).repeat(-(-count * rows // (length - 1)))
    for i in range(count):
        _check_cuts(forward, x, base, cuts[i * rows : (i + 1) * rows], vocab_size, generator)


def _noise(shape: tuple[int, ...], vocab_size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(0, vocab_size - 1, shape, generator=generator).to(device)  # never BOS (the last id)


def _gap(forward: Forward, x: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """[B, T]: how far each prediction moves from `base` when the model sees `x` instead (NaN if it goes NaN)."""
    moved = torch.log_softmax(forward(x).float(), dim=-1).sub_(base)  # in place: a third fewer [B, T, V] passes
    low, high = torch.aminmax(moved, dim=-1)
    return torch.maximum(high, low.neg())


def _check_independent(
    forward: Forward, x: torch.Tensor, base: torch.Tensor, vocab_size: int, generator: torch.Generator
) -> None:
    keep = torch.rand(x.size(0), generator=generator) < 0.5
    keep[0], keep[1] = True, False  # at least one row of each kind
    keep = keep[torch.randperm(x.size(0), generator=generator)].to(x.device)
    changed = torch.where(keep[:, None], x, _noise(tuple(x.shape), vocab_size, generator, x.device))
    moved = float(_gap(forward, changed, base)[keep].max())
    if not moved <= CAUSALITY_ATOL:
        raise ContractError(
            "invalid", f"rows are not independent: replacing other rows moves a row's predictions by {moved:.3g} nats"
        )


def _check_cuts(
    forward: Forward,
    x: torch.Tensor,
    base: torch.Tensor,
    cuts: torch.Tensor,
    vocab_size: int,
    generator: torch.Generator,
) -> None:
    after = torch.arange(x.size(1))[None, :] > cuts[:, None]  # [B, T]: the positions each row gets anew
    changed = torch.where(after.to(x.device), _noise(tuple(x.shape), vocab_size, generator, x.device), x)
    gap = _gap(forward, changed, base).masked_fill(after.to(x.device), 0.0)
    leak = float(gap.max())
    if not leak <= CAUSALITY_ATOL:
        row = int(gap.amax(dim=1).argmax())
        raise ContractError(
            "invalid",
            f"non-causal: predictions at positions <= {int(cuts[row])} change by {leak:.3g} nats "
            "when later tokens change",
        )


def evaluate(forward: Forward, rows: torch.Tensor, token_bytes: torch.Tensor, batch_size: int) -> float:
    """bits per byte of `forward` over fixed rows [N, T+1] (inputs = row[:-1], targets = row[1:])."""
    vocab = token_bytes.numel()
    nats, nbytes = 0.0, 0
    for i in range(0, rows.size(0), batch_size):
        chunk = rows[i : i + batch_size]
        x, y = chunk[:, :-1], chunk[:, 1:]
        n_real = x.size(0)
        if n_real < batch_size:  # exported graphs have a fixed batch: pad, then drop the padding
            x = torch.cat([x, x[-1:].expand(batch_size - n_real, -1)])
        logits = forward(x)
        check_logits(logits, batch_size, x.size(1), vocab)
        logits = logits[:n_real]
        n, b = nats_and_bytes(logits, y, token_bytes)
        nats, nbytes = nats + n, nbytes + b
    return bits_per_byte(nats, nbytes)
