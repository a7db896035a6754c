"""The score: bits per byte from a model's logits, and the contract checks that come before it.

val_bpb = sum of per-token cross-entropy (nats) / (ln 2 * sum of UTF-8 bytes of the target tokens),
with special tokens (BOS) excluded from both sums. The harness applies log_softmax itself, so any
finite logits are a valid distribution; the model never sees a target it is being scored on.
"""

from __future__ import annotations

import math
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
    if not torch.isfinite(logits).all():
        raise ContractError("nan", "logits contain NaN or inf")


def probe_positions(seq_len: int, count: int) -> list[int]:
    """`count` fixed positions spread over the row: the prefix up to each is checked for leaks after it."""
    return [max(0, (seq_len * (i + 1)) // (count + 1) - 1) for i in range(count)]


def check_causal(forward: Forward, x: torch.Tensor, vocab_size: int, count: int, seed: int = 0) -> None:
    """One probe forward, two rules. Row 0 is left as it is while every other row changes: its predictions
    must not move (rows are independent, so no row can read the continuation held in another). Row k >= 1
    gets new tokens after position t_k: its predictions at positions <= t_k must not move (causality)."""
    if x.size(0) < 2:
        raise ValueError("the causality probe needs a batch of at least 2 rows")
    base = torch.log_softmax(forward(x).float(), dim=-1)
    positions = probe_positions(x.size(1), max(count, x.size(0) - 1))
    generator = torch.Generator().manual_seed(seed)
    changed = x.clone()
    for k in range(1, x.size(0)):
        t = positions[(k - 1) % len(positions)]
        noise = torch.randint(0, vocab_size - 1, (x.size(1) - t - 1,), generator=generator)
        changed[k, t + 1 :] = noise.to(x.device)
    probe = torch.log_softmax(forward(changed).float(), dim=-1)
    gap = (probe - base).abs().amax(dim=-1)  # [B, T]
    if not float(gap[0].max()) <= CAUSALITY_ATOL:
        raise ContractError(
            "invalid",
            f"rows are not independent: changing other rows moves a row's "
            f"predictions by {float(gap[0].max()):.3g} nats",
        )
    for k in range(1, x.size(0)):
        t = positions[(k - 1) % len(positions)]
        leak = float(gap[k, : t + 1].max())
        if not leak <= CAUSALITY_ATOL:
            raise ContractError(
                "invalid",
                f"non-causal: predictions at positions <= {t} change by {leak:.3g} nats when later tokens change",
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
