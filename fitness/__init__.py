"""fitness: the fixed harness. Owns the data, the tokenizer, the training clock and the score.

A genome (train.py) can't change anything here: it trains inside a sandboxed child process that only
ever sees training tokens, hands its model over as an exported graph, and a separate scorer process
computes val_bpb from that graph's logits. This package imports none of the other evolve packages.
"""

from fitness.profile import Profile
from fitness.result import STATUSES, RunResult

__all__ = ["Profile", "RunResult", "STATUSES"]
