"""Export the archive to the seed project's results.tsv (karpathy/autoresearch's experiment log).

One row per genome, from its first evaluation, in recording order: commit (7-char id), val_bpb (6
decimals), memory_gb (1 decimal), status and description. Status is "keep" when that evaluation
improved the running best val_bpb at the time, "discard" when it was ok but not better, and "crash"
for any failure (then val_bpb and memory_gb are 0, as autoresearch writes them).
"""

from __future__ import annotations

import math

import pandas as pd

HEADER = ("commit", "val_bpb", "memory_gb", "status", "description")


def results_tsv(archive: pd.DataFrame) -> str:
    """The results.tsv text for an archive frame (columns as in population.archive.SCHEMA)."""
    lines = ["\t".join(HEADER)]
    best = math.inf
    first = archive.sort_values("eval_id").drop_duplicates("genome_id", keep="first")
    for row in first.itertuples(index=False):
        ok = row.status == "ok" and math.isfinite(row.val_bpb)
        status = "crash" if not ok else "keep" if row.val_bpb < best else "discard"
        if ok:
            best = min(best, row.val_bpb)
        val_bpb = row.val_bpb if ok else 0.0
        memory_gb = row.peak_memory_mb / 1024 if ok else 0.0
        description = " ".join(str(row.description).split())
        lines.append(f"{row.genome_id[:7]}\t{val_bpb:.6f}\t{memory_gb:.1f}\t{status}\t{description}")
    return "\n".join(lines) + "\n"
