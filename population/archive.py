"""Archive: one row per evaluation, stored as Parquet segments in `<run>/archive/`.

A genome may be evaluated several times (`kind`: "child" for its first training, "repeat" for
re-evaluations that measure its fitness, "replay" for re-running an old genome, "noise" for repeats of
the seed that measure sigma, "confirm" for the end-of-run retraining of the top few at fresh seeds, see
evolve.confirm); its search fitness comes from its ok rows (population.survivors says which).
`make_row` is pure: the caller passes the timestamps. Each row keeps its loss curve (at most 200 float32
pairs, `curve`; older segments without it read as none).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pyarrow as pa

from fitness.result import RunResult
from population.messages import Genome, LLMSpend
from population.segments import SegmentLog

KINDS = ("child", "repeat", "replay", "noise", "confirm")

SCHEMA = pa.schema(
    [
        ("eval_id", pa.int64()),  # row number, in recording order
        ("genome_id", pa.string()),
        ("parents", pa.string()),  # comma-separated full ids; "" for the seed
        ("generation", pa.int64()),  # the accounting generation this evaluation belongs to
        ("operator", pa.string()),
        ("description", pa.string()),
        ("kind", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("val_bpb", pa.float64()),
        ("test_bpb", pa.float64()),
        ("training_seconds", pa.float64()),
        ("total_seconds", pa.float64()),
        ("num_steps", pa.int64()),
        ("tokens", pa.int64()),
        ("num_params", pa.int64()),
        ("peak_memory_mb", pa.float64()),
        ("device", pa.string()),  # e.g. "cpu:2" or the GPU type
        ("node", pa.string()),
        ("worker", pa.string()),
        ("seed", pa.int64()),
        ("profile", pa.string()),
        ("budget_seconds", pa.float64()),
        ("source_chars", pa.int64()),
        ("llm_model", pa.string()),
        ("llm_input_tokens", pa.int64()),
        ("llm_output_tokens", pa.int64()),
        ("llm_cost_usd", pa.float64()),
        ("started", pa.string()),  # ISO timestamps, as passed by the caller
        ("finished", pa.string()),
        ("curve_progress", pa.list_(pa.float32())),  # the loss curve (fitness.curves): budget fraction ...
        ("curve_loss", pa.list_(pa.float32())),  # ... and the genome's own training loss there; empty if none
    ]
)
_RESULT_FIELDS = (
    "status reason val_bpb test_bpb training_seconds total_seconds num_steps tokens num_params "
    "peak_memory_mb device seed profile budget_seconds"
).split()


def make_row(
    genome: Genome,
    result: RunResult,
    *,
    kind: str,
    generation: int,
    node: str = "",
    worker: str = "",
    started: str = "",
    finished: str = "",
    llm: LLMSpend | None = None,
) -> dict:
    """One archive row (without eval_id)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    llm = llm or LLMSpend()
    row = {name: getattr(result, name) for name in _RESULT_FIELDS}
    row.update(
        genome_id=genome.id,
        parents=",".join(genome.parents),
        generation=generation,
        operator=genome.operator,
        description=genome.description,
        kind=kind,
        node=node,
        worker=worker,
        source_chars=len(genome.source),
        llm_model=llm.model,
        llm_input_tokens=int(llm.input_tokens),
        llm_output_tokens=int(llm.output_tokens),
        llm_cost_usd=float(llm.cost_usd),
        started=started,
        finished=finished,
        curve_progress=[float(p) for p, _ in result.loss_curve],
        curve_loss=[float(loss) for _, loss in result.loss_curve],
    )
    return row


def curve(row) -> tuple[tuple[float, float], ...]:
    """A row's loss curve as (progress, loss) pairs (a row dict, a frame's row or itertuples' tuple; none for
    rows written before curves were kept)."""
    progress, loss = (
        (row["curve_progress"], row["curve_loss"]) if isinstance(row, dict) else (row.curve_progress, row.curve_loss)
    )
    if progress is None or loss is None:
        return ()
    return tuple((float(p), float(v)) for p, v in zip(progress, loss, strict=True))


def ok_value(row: dict) -> float | None:
    """The val_bpb this row contributes to its genome's fitness, or None for a failed evaluation."""
    value = row["val_bpb"]
    return value if row["status"] == "ok" and value is not None and math.isfinite(value) else None


class Archive:
    """Append-only evaluations, in memory and on disk; one writer per run (readers pass `read_only`)."""

    def __init__(self, directory: Path, fanout: int = 16, read_only: bool = False) -> None:
        self._log = SegmentLog(directory, SCHEMA, fanout, read_only)
        self._tables = [self._log.read()]
        self._frame: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self._log)

    def rows(self) -> list[dict]:
        return pa.concat_tables(self._tables).to_pylist()

    def append(self, row: dict) -> dict:
        """Durably record one row; returns it with its eval_id."""
        row = {"eval_id": len(self._log), **row}
        self._log.append([row])
        self._tables.append(pa.Table.from_pylist([row], schema=SCHEMA))
        if len(self._tables) > 256:  # merge the one-row tables now and then: memory stays small
            self._tables = [pa.concat_tables(self._tables).combine_chunks()]
        self._frame = None
        return row

    def frame(self) -> pd.DataFrame:
        """Every evaluation as a DataFrame (a fresh copy; cached between appends)."""
        if self._frame is None:
            table = pa.concat_tables(self._tables).combine_chunks()
            self._tables = [table]
            self._frame = table.to_pandas(use_threads=False)  # no Arrow thread pool (see segments._read_one)
        return self._frame.copy()
