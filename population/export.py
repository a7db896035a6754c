"""The archive read back as history: the confirmed best after every evaluation, and results.tsv.

"Best" means one thing everywhere (status, lineage best, the report's plot and summary, results.tsv):
Population.best(), the best confirmed genome or before any the search's best, which `best_history`
recomputes row by row exactly as Population does while it records.

results.tsv is the seed project's experiment log (karpathy/autoresearch): one row per genome with a
finished evaluation, in the order of its first one: commit (7-char id), val_bpb (its mean over ok
evaluations, 6 decimals), memory_gb (its peak, 1 decimal), status and description. Status means what it
means there: "keep" for a genome that became the best, "discard" for one that trained but never did,
"crash" for one that never trained ok (then val_bpb and memory_gb are 0). Interrupted evaluations are
not results: a genome that has only those is left out (a resumed run trains it again).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from population.archive import ok_value
from population.messages import PopulationConfig
from population.survivors import Survivors

HEADER = ("commit", "val_bpb", "memory_gb", "status", "description")


@dataclass(frozen=True)
class BestAt:
    """The best just after one archive row was recorded."""

    eval_id: int
    best_id: str | None
    val_bpb: float  # the best's score at that moment (its confirmation mean once confirmed); nan while none
    confirmed: bool = False  # the best was confirmed at fresh seeds (evolve.confirm)


def best_history(archive: pd.DataFrame, seed_id: str, config: PopulationConfig) -> list[BestAt]:
    """After each row, in recording order: the best as Population.best() was at that moment (replayed
    through the same selection state, population.survivors.Survivors)."""
    state = Survivors(seed_id, config)
    history = []
    for row in archive.sort_values("eval_id").to_dict("records"):
        counted = row["kind"] == "child" and row["status"] != "interrupted"
        state.apply(
            row["genome_id"], ok_value(row), row["source_chars"], counted, row["seed"], row["kind"] == "confirm"
        )
        best, fitness, confirmed = state.pick_fitness()
        history.append(BestAt(int(row["eval_id"]), best, fitness.mean if best else math.nan, confirmed))
    return history


def results_tsv(archive: pd.DataFrame, seed_id: str, config: PopulationConfig) -> str:
    """The results.tsv text for an archive frame (columns as in population.archive.SCHEMA)."""
    kept = {step.best_id for step in best_history(archive, seed_id, config)}
    finished = archive[archive.status != "interrupted"].sort_values("eval_id")
    lines = ["\t".join(HEADER)]
    for genome_id, rows in finished.groupby("genome_id", sort=False):
        ok = rows[rows.val_bpb.map(math.isfinite) & (rows.status == "ok")]
        pruned = (rows.status == "pruned").any()  # stopped on its curve: trained, and discarded
        status = "crash" if not len(ok) and not pruned else "keep" if genome_id in kept else "discard"
        val_bpb = ok.val_bpb.mean() if len(ok) else 0.0
        memory_gb = ok.peak_memory_mb.max() / 1024 if len(ok) else 0.0
        description = " ".join(str(rows.description.iloc[0]).split())
        lines.append(f"{genome_id[:7]}\t{val_bpb:.6f}\t{memory_gb:.1f}\t{status}\t{description}")
    return "\n".join(lines) + "\n"
