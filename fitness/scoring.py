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
# How far (nats, any token's log-probability) a probed prediction may move when other rows or later tokens
# change. An honest graph computes an unchanged prefix with the same kernels on the same values, so on CPU
# the seed (float32) and bf16 matmul/attention graphs move by exactly 0; an FFT causal convolution, whose
# rounding mixes every position, by 3e-6. 1e-4 leaves 37x margin over that. What it still lets through: a
# graph may read the next token at every position, shifting each prediction by under 1e-4 nats, a gain
# of at most 1e-4 nats per token: 1e-4 / (ln 2 * 2.0 bytes per token) = 7e-5 bpb at smoke (the old 1e-2
# allowed 7e-3, more than the seed's noise of 4e-3). Graphs whose GPU kernels are not run-to-run
# deterministic (atomic adds) by more than this are refused as non-causal.
CAUSALITY_ATOL = 1e-4


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


def gap(base: torch.Tensor, logits: torch.Tensor, compared: torch.Tensor, chunk: int = 2**22) -> torch.Tensor:
    """[B, T] float64: how far each compared prediction moves from `base` to `logits`, in nats: the largest
    change of any token's log-probability (0 where not compared). In float64, `chunk` elements at a time:
    the difference of two float32 logits is exact there, so a prediction computed the same way twice moves
    by exactly 0, and rounding in the comparison itself stays far below CAUSALITY_ATOL."""
    moved = torch.zeros(compared.shape, dtype=torch.float64, device=compared.device)
    where = compared.nonzero(as_tuple=True)
    step = max(1, chunk // base.size(-1))
    for i in range(0, where[0].numel(), step):
        at = (where[0][i : i + step], where[1][i : i + step])
        b, x = base[at].double(), logits[at].double()
        shift = (x - b).sub_((x.logsumexp(-1) - b.logsumexp(-1))[:, None])
        moved[at] = shift.abs_().amax(dim=-1)
    return moved
