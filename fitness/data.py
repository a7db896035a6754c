"""The token cache: each split tokenized once into a flat uint16 memmap, plus BOS-aligned row starts.

Layout under `$EVOLVE_CACHE` (default ~/.cache/evolve): `<dataset>/shards/` (climbmix downloads) and
`<dataset>/vocab<V>/` holding tokenizer.pkl, token_bytes.npy, `<split>.bin` (tokens, every document
prefixed with BOS), `<split>_docs.npy` (document starts) and `<split>_rows<T>.npy` (row starts).

A row is T+1 consecutive tokens that begins at a document start (or, inside a document longer than a
row, at a multiple of T from its start) and runs on into the following documents: packed, no padding.
Rows never overlap in their targets, so every validation token is scored exactly once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fitness import datasets, tokenizer

TOKENIZER_MAX_CHARS = 2_000_000_000  # climbmix: enough text for the merges, as in the seed project
Progress = Callable[[str, int, int], None]  # (stage, done, total)


def cache_root() -> Path:
    return Path(os.environ.get("EVOLVE_CACHE") or "~/.cache/evolve").expanduser()


@dataclass(frozen=True)
class TokenCache:
    """Paths of one (dataset, vocabulary) in the cache."""

    dataset: str
    vocab_size: int
    root: Path

    @classmethod
    def at(cls, dataset: str, vocab_size: int, base: Path | None = None) -> TokenCache:
        return cls(dataset, vocab_size, (base or cache_root()) / dataset / f"vocab{vocab_size}")

    @property
    def shard_dir(self) -> Path:
        return self.root.parent / "shards"

    @property
    def tokenizer_path(self) -> Path:
        return self.root / "tokenizer.pkl"

    @property
    def token_bytes_path(self) -> Path:
        return self.root / "token_bytes.npy"

    def tokens_path(self, split: str) -> Path:
        return self.root / f"{split}.bin"

    def docs_path(self, split: str) -> Path:
        return self.root / f"{split}_docs.npy"

    def rows_path(self, split: str, seq_len: int) -> Path:
        return self.root / f"{split}_rows{seq_len}.npy"

    def tokens(self, split: str) -> np.ndarray:
        return np.memmap(self.tokens_path(split), dtype=np.uint16, mode="r")

    def rows(self, split: str, seq_len: int) -> np.ndarray:
        return np.load(self.rows_path(split, seq_len))

    def identity(self) -> dict:
        """Hashes that say exactly which data and tokenizer a score was computed with."""
        meta = self.root / "meta.json"
        return json.loads(meta.read_text()) if meta.exists() else {}


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder per node: concurrent workers wait here, then find the cache ready."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, array)
    tmp.replace(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def _capped(texts: Iterator[str], max_chars: int) -> Iterator[str]:
    used = 0
    for text in texts:
        if used >= max_chars:
            return
        used += len(text)
        yield text


def _tokenize_split(cache: TokenCache, split: str, encoding, num_shards: int, progress: Progress | None) -> None:
    bos = encoding.encode_single_token(tokenizer.BOS)
    docs = datasets.documents(cache.dataset, split, cache.shard_dir, num_shards)
    tmp = cache.tokens_path(split).with_suffix(".bin.tmp")
    starts, position, batch = [], 0, []
    with open(tmp, "wb") as out:
        for i, doc in enumerate(docs, 1):
            batch.append(doc)
            if len(batch) == 1024:
                position = _write_batch(out, encoding, batch, bos, starts, position)
                batch = []
                if progress:
                    progress(f"tokenize {split}", i, 0)
        position = _write_batch(out, encoding, batch, bos, starts, position)
    _atomic_save(cache.docs_path(split), np.asarray(starts, dtype=np.int64))
    tmp.replace(cache.tokens_path(split))


def _write_batch(out, encoding, batch: list[str], bos: int, starts: list[int], position: int) -> int:
    for ids in encoding.encode_ordinary_batch(batch):
        starts.append(position)
        row = np.asarray([bos, *ids], dtype=np.uint16)
        out.write(row.tobytes())
        position += len(row)
    return position


def row_starts(doc_starts: np.ndarray, n_tokens: int, seq_len: int) -> np.ndarray:
    """Greedy, non-overlapping row starts: every document start, plus every seq_len inside a long document
    while a whole row still fits in it (its last partial chunk is left out, so the next document's start
    stays free to open a row)."""
    ends = np.append(doc_starts[1:], n_tokens)
    counts = np.maximum(1, (ends - doc_starts) // seq_len)
    first = np.repeat(doc_starts, counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    candidates = first + within * seq_len
    candidates = candidates[candidates + seq_len + 1 <= n_tokens]
    chosen, i = [], 0
    while i < len(candidates):
        chosen.append(candidates[i])
        i = int(np.searchsorted(candidates, candidates[i] + seq_len, side="left"))
    return np.asarray(chosen, dtype=np.int64)


def prepare(
    dataset: str,
    vocab_size: int,
    seq_lens: tuple[int, ...] = (),
    num_shards: int = 0,
    progress: Progress | None = None,
) -> TokenCache:
    """Build (once per node) everything a run needs: shards, tokenizer, token arrays, row starts."""
    cache = TokenCache.at(dataset, vocab_size)
    with _locked(cache.root.parent / f".lock-vocab{vocab_size}"):
        cache.root.mkdir(parents=True, exist_ok=True)
        if dataset == "climbmix":
            _download(cache, num_shards, progress)
        if not cache.tokenizer_path.exists():
            train_docs = datasets.documents(dataset, "train", cache.shard_dir, num_shards)
            tokenizer.save(
                cache.tokenizer_path,
                *tokenizer.train_bpe(_capped(train_docs, TOKENIZER_MAX_CHARS), vocab_size),
            )
        encoding = tokenizer.load(cache.tokenizer_path)
        if not cache.token_bytes_path.exists():
            _atomic_save(cache.token_bytes_path, tokenizer.token_byte_lengths(encoding))
        for split in datasets.SPLITS:
            if not cache.tokens_path(split).exists():
                _tokenize_split(cache, split, encoding, num_shards, progress)
            for seq_len in seq_lens:
                if not cache.rows_path(split, seq_len).exists():
                    docs = np.load(cache.docs_path(split))
                    _atomic_save(cache.rows_path(split, seq_len), row_starts(docs, len(cache.tokens(split)), seq_len))
        _write_identity(cache, num_shards)
    return cache


def _download(cache: TokenCache, num_shards: int, progress: Progress | None) -> None:
    if num_shards < 1:
        raise datasets.DatasetError(f"climbmix needs --num-shards >= 1, got {num_shards}")
    cache.shard_dir.mkdir(parents=True, exist_ok=True)
    wanted = [
        *datasets.climbmix_shards("train", num_shards),
        datasets.CLIMBMIX_VAL_SHARD,
        datasets.CLIMBMIX_TEST_SHARD,
    ]
    base_url = os.environ.get("EVOLVE_CLIMBMIX_URL", datasets.CLIMBMIX_URL)
    for done, index in enumerate(wanted, 1):
        datasets.download_shard(index, cache.shard_dir, base_url)
        if progress:
            progress("download", done, len(wanted))


def _write_identity(cache: TokenCache, num_shards: int) -> None:
    meta = cache.root / "meta.json"
    if meta.exists() and cache.identity().get("num_shards") == num_shards:
        return
    identity = {"dataset": cache.dataset, "vocab_size": cache.vocab_size, "num_shards": num_shards}
    identity["tokenizer_sha"] = _sha256(cache.tokenizer_path)
    identity.update({f"{split}_sha": _sha256(cache.tokens_path(split)) for split in datasets.SPLITS})
    tmp = meta.with_suffix(".tmp")
    tmp.write_text(json.dumps(identity, indent=1))
    tmp.replace(meta)


class RowSampler:
    """Training batches: rows drawn without replacement, reshuffled every epoch with the run's seed."""

    def __init__(self, tokens: np.ndarray, rows: np.ndarray, seq_len: int, seed: int):
        if len(rows) == 0:
            raise ValueError(f"no training rows of length {seq_len + 1}")
        self.tokens, self.rows, self.seq_len = tokens, rows, seq_len
        self.rng = np.random.default_rng(seed)
        self.order, self.cursor, self.epoch = self.rng.permutation(len(rows)), 0, 0

    def next(self, batch_size: int) -> np.ndarray:
        picks = []
        while len(picks) < batch_size:
            if self.cursor == len(self.order):
                self.order, self.cursor, self.epoch = self.rng.permutation(len(self.rows)), 0, self.epoch + 1
            picks.append(self.rows[self.order[self.cursor]])
            self.cursor += 1
        return np.stack([self.tokens[s : s + self.seq_len + 1] for s in picks]).astype(np.int64)


def eval_rows(cache: TokenCache, split: str, seq_len: int, n_tokens: int) -> np.ndarray:
    """The fixed scoring rows of a split: the first ceil(n_tokens / seq_len) rows, in order."""
    starts = cache.rows(split, seq_len)
    n_rows = -(-n_tokens // seq_len)
    if len(starts) < n_rows:
        raise datasets.DatasetError(
            f"{cache.dataset} {split} split has {len(starts)} rows of {seq_len} tokens; scoring needs {n_rows}"
        )
    tokens = cache.tokens(split)
    return np.stack([tokens[s : s + seq_len + 1] for s in starts[:n_rows]]).astype(np.int64)
