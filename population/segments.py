"""SegmentLog: an append-only table stored as small immutable Parquet files, compacted atomically.

Each append writes one new file `seg-<lo>-<hi>.parquet` holding rows lo..hi (row numbers), through a
temporary file, fsync and os.replace, so a file is either absent or complete. Compaction works like a
base-`fanout` counter: when the newest `fanout` segments have the same size class they are rewritten as
one file covering their whole range (again tmp + fsync + replace), and only then are the small files
deleted. A crash between those steps leaves both; on open, any segment whose range lies inside another
is redundant and is removed. A write that fails (a full disk) leaves no file behind: an append that raises
added nothing, and a compaction that fails is postponed, its rows already durable in the small files.
So a `kill -9` at any instant leaves every acknowledged row readable once, and the amortised cost of an
append stays flat (O(log n) rows rewritten per row).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from population.errors import RunDirError

log = logging.getLogger(__name__)

_NAME = re.compile(r"seg-(\d{10})-(\d{10})\.parquet")
_TMP_PREFIX = ".tmp-"
_READ_ATTEMPTS = 5  # a reader lists again this often when a concurrent compaction moves rows


class _Moved(Exception):
    """A reader saw the segment files change under it (a concurrent compaction)."""


class SegmentLog:
    """The single writer's view of one segment directory (callers hold the run directory lock).

    With `read_only` it is a reader's view of a log another process may be writing: it takes no lock,
    changes nothing on disk, and lists again when a compaction moves rows while it reads.
    """

    def __init__(self, directory: Path, schema: pa.Schema, fanout: int = 16, read_only: bool = False) -> None:
        self._dir = directory
        self._schema = schema
        self._fanout = fanout
        self._read_only = read_only
        if not read_only:
            self._dir.mkdir(parents=True, exist_ok=True)
        self._segments = self._recover()  # [(lo, hi)] sorted, contiguous from 0

    def __len__(self) -> int:
        return self._segments[-1][1] + 1 if self._segments else 0

    def read(self) -> pa.Table:
        """Every row ever appended, in order (for a reader: every row there was when it listed last)."""
        return self._retrying(self._read_all, relist=True)

    def append(self, rows: list[dict]) -> None:
        """Durably add `rows`; when this returns they survive any crash of this process."""
        assert not self._read_only, "append on a read-only SegmentLog"
        if not rows:
            return
        lo = len(self)
        self._write(lo, lo + len(rows) - 1, pa.Table.from_pylist(rows, schema=self._schema))
        self._segments.append((lo, lo + len(rows) - 1))
        self._compact()

    def _compact(self) -> None:
        while len(self._segments) >= self._fanout:
            tail = self._segments[-self._fanout :]
            if len({self._level(seg) for seg in tail}) != 1:
                return
            lo, hi = tail[0][0], tail[-1][1]
            try:
                self._write(lo, hi, pa.concat_tables([self._read_one(*seg) for seg in tail]))
            except OSError as e:  # the rows are durable already; merging them can wait for space
                log.warning("archive compaction of rows %d-%d postponed: %s", lo, hi, e)
                return
            self._segments[-self._fanout :] = [(lo, hi)]
            for seg in tail:
                self._path(*seg).unlink()
            _fsync_dir(self._dir)

    def _level(self, segment: tuple[int, int]) -> int:
        width, level = segment[1] - segment[0] + 1, 0
        while width >= self._fanout:
            width //= self._fanout
            level += 1
        return level

    def _recover(self) -> list[tuple[int, int]]:
        """List complete segments; the writer also drops leftovers of an interrupted write or compaction."""
        return self._retrying(self._list)

    def _retrying(self, action, relist: bool = False):
        """`action()`; a reader that saw a concurrent compaction move rows waits a moment and tries again."""
        for attempt in range(_READ_ATTEMPTS):
            try:
                return action()
            except _Moved as moved:
                if attempt + 1 == _READ_ATTEMPTS:
                    raise RunDirError(f"{moved} (still so after {_READ_ATTEMPTS} tries)") from None
                time.sleep(0.01 * 2**attempt)
                if relist:
                    self._segments = self._recover()
        raise AssertionError("unreachable")

    def _read_all(self) -> pa.Table:
        # Open every segment first: a file a concurrent compaction deletes afterwards stays readable.
        with contextlib.ExitStack() as files:
            opened = [(lo, hi, files.enter_context(self._open(lo, hi))) for lo, hi in self._segments]
            tables = [self._read_one(lo, hi, handle) for lo, hi, handle in opened]
        return pa.concat_tables(tables) if tables else self._schema.empty_table()

    def _list(self) -> list[tuple[int, int]]:
        if self._read_only and not self._dir.is_dir():
            return []  # a run whose first evaluation is still to come
        found = []
        for name in os.listdir(self._dir):
            if name.startswith(_TMP_PREFIX) and not self._read_only:
                (self._dir / name).unlink()
            elif match := _NAME.fullmatch(name):
                found.append((int(match[1]), int(match[2])))
        found.sort(key=lambda seg: (seg[0], -seg[1]))
        kept: list[tuple[int, int]] = []
        for lo, hi in found:
            if kept and hi <= kept[-1][1]:
                if not self._read_only:
                    self._path(lo, hi).unlink()  # already inside a compacted segment
                continue
            expected = kept[-1][1] + 1 if kept else 0
            if lo != expected:
                message = f"archive in {str(self._dir)!r} lost rows: segment {lo}-{hi} follows row {expected - 1}"
                raise _Moved(message) if self._read_only else RunDirError(message)
            kept.append((lo, hi))
        return kept

    def _open(self, lo: int, hi: int) -> BinaryIO:
        path = self._path(lo, hi)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            if self._read_only:  # compacted away since we listed
                raise _Moved(f"archive segment {str(path)!r} vanished while it was read") from None
            raise RunDirError(f"archive segment {str(path)!r} is missing") from None

    def _read_one(self, lo: int, hi: int, handle: BinaryIO | None = None) -> pa.Table:
        path = self._path(lo, hi)
        try:
            # Read on this thread alone: pq.read_table goes through the dataset scanner, which starts Arrow's
            # CPU and I/O thread pools whatever use_threads says, and a pool still busy with a failed read's
            # read-ahead when the interpreter exits aborts it (SIGABRT, "terminate called without an active
            # exception"): a one-line error exit became a crash. ParquetFile without pre-buffering starts none.
            table = _conform(pq.ParquetFile(handle or path, pre_buffer=False).read(use_threads=False), self._schema)
        except (OSError, pa.ArrowException) as e:
            raise RunDirError(f"archive segment {str(path)!r} is unreadable: {e}") from None
        if table.num_rows != hi - lo + 1:
            raise RunDirError(f"archive segment {str(path)!r} holds {table.num_rows} rows, expected {hi - lo + 1}")
        return table

    def _write(self, lo: int, hi: int, table: pa.Table) -> None:
        final = self._path(lo, hi)
        tmp = final.with_name(_TMP_PREFIX + final.name)
        try:
            with open(tmp, "wb") as f:
                pq.write_table(table, f, compression="zstd")
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            tmp.unlink(missing_ok=True)  # a full disk: give back what the half-written file took
            raise
        os.replace(tmp, final)
        _fsync_dir(self._dir)

    def _path(self, lo: int, hi: int) -> Path:
        return self._dir / f"seg-{lo:010d}-{hi:010d}.parquet"


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with `schema`'s columns in its order: a column an older segment lacks reads as nulls."""
    columns = [
        table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
