"""BPE tokenizer: trained with rustbpe on the training split only, served as a tiktoken Encoding.

The vocabulary is `vocab_size - 1` learned tokens plus one special BOS token that starts every
document. `token_bytes[i]` is the UTF-8 length of token i (0 for BOS), which is what turns summed
nats into bits per byte.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tiktoken

BOS = "<|bos|>"
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""  # noqa: E501
)


def train_bpe(texts: Iterable[str], vocab_size: int) -> tuple[str, dict[bytes, int]]:
    """Learn `vocab_size - 1` BPE tokens from texts; returns (split pattern, mergeable ranks)."""
    import rustbpe

    if vocab_size < 257:
        raise ValueError(f"vocab_size {vocab_size} is below 257 (256 byte tokens + BOS)")
    bpe = rustbpe.Tokenizer()
    bpe.train_from_iterator(iter(texts), vocab_size - 1, pattern=SPLIT_PATTERN)
    ranks = {bytes(token): rank for token, rank in bpe.get_mergeable_ranks()}
    return bpe.get_pattern(), ranks


def make_encoding(pattern: str, ranks: dict[bytes, int], name: str = "evolve") -> tiktoken.Encoding:
    return tiktoken.Encoding(name=name, pat_str=pattern, mergeable_ranks=ranks, special_tokens={BOS: len(ranks)})


def save(path: Path, pattern: str, ranks: dict[bytes, int]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps({"pattern": pattern, "ranks": ranks}))
    tmp.replace(path)


def load(path: Path) -> tiktoken.Encoding:
    return loads(path.read_bytes())


def loads(data: bytes) -> tiktoken.Encoding:
    state = pickle.loads(data)  # our own cache file, written by save()
    return make_encoding(state["pattern"], state["ranks"])


def token_byte_lengths(encoding: tiktoken.Encoding) -> np.ndarray:
    special = {encoding.encode_single_token(name) for name in encoding.special_tokens_set}
    lengths = np.zeros(encoding.n_vocab, dtype=np.int32)
    for token in range(encoding.n_vocab):
        if token not in special:
            lengths[token] = len(encoding.decode_single_token_bytes(token))
    return lengths
