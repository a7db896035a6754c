"""A run directory as the inspection commands see it: opened read-only, genome ids resolved, one row per genome.

Works on a finished run or one another process is still writing (Population.read takes no lock).
Every problem with the directory, its archive or a typed genome id becomes a UsageError: one line that
quotes the bad value, exit code 2.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evolve.cli import UsageError
from population import Genome, GenomeIdError, Population, PopulationConfig, RunDirError, RunSummary
from population.rundir import MARKER

RUN_JSON = "run.json"
LOGS = "logs"  # each evaluation's train.log, kept by the trainer worker where the run directory is on its node
RUNS = Path("runs")  # where the run puts run directories by default, relative to where it was started


def run_dirs(root: Path = RUNS) -> list[Path]:
    """The runs directly under `root` (default ./runs, where the run puts them), oldest first by creation."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if (p / MARKER).is_file()]
    return sorted(found, key=lambda p: ((p / MARKER).stat().st_mtime, p.name))  # the marker is written once


def latest_run(root: Path = RUNS) -> Path:
    """The run created last under `root`, announced on stderr (stdout stays the command's own)."""
    found = run_dirs(root)
    if not found:
        raise UsageError(f"no run under {str(root)!r} in this directory; pass --run-dir D")
    print(f"evolve: run directory {found[-1]} (the latest under {root}/)", file=sys.stderr)
    return found[-1]


def run_dir_arg(text: str | Path | None) -> Path:
    """The --run-dir value, checked: it exists and is a run; without one, the latest run under ./runs."""
    if text is None:
        return latest_run()
    path = Path(text)
    if not path.exists():
        raise UsageError(f"run directory {str(text)!r} does not exist")
    if not path.is_dir():
        raise UsageError(f"run directory {str(text)!r} is not a directory")
    if not (path / MARKER).is_file():
        raise UsageError(f"{str(text)!r} is not an evolve run directory (no {MARKER})")
    return path


def run_record(run_dir: Path) -> dict:
    """run.json as the orchestrator wrote it; {} for a run made without it (tests, old runs)."""
    path = run_dir / RUN_JSON
    if not path.exists():
        return {}
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"{str(path)!r} is damaged: {one_line(str(e))}") from None
    if not isinstance(record, dict):
        raise UsageError(f"{str(path)!r} is damaged: expected a JSON object")
    return record


def open_run(text: str | Path | None, write: bool = False) -> Population:
    """The run read-only (default), or for writing (fails with one line while another process has it)."""
    run_dir = run_dir_arg(text)
    recorded = run_record(run_dir).get("population")
    try:
        config = PopulationConfig(**recorded) if isinstance(recorded, dict) else PopulationConfig()
    except (TypeError, ValueError) as e:
        raise UsageError(f"{str(run_dir / RUN_JSON)!r} has a bad population config: {e}") from None
    try:
        return Population.open(run_dir, None, config) if write else Population.read(run_dir, config)
    except RunDirError as e:
        raise UsageError(one_line(str(e))) from None


def resolve(pop: Population, text: str) -> Genome:
    """A genome by full id, unique prefix, `best` (the seed until there is a best) or `seed`."""
    if text == "best":
        return pop.best() or pop.seed()
    if text == "seed":
        return pop.seed()
    try:
        return pop.genome(text)
    except GenomeIdError as e:
        raise UsageError(str(e)) from None


def log_path(run_dir: Path, source: str, seed: int, started: str) -> Path:
    """Where an evaluation's log is kept: named by the genome's source (ids are made by the population, which
    the worker never asks), the training seed and the start stamp the worker reports (the archive's `started`)."""
    stamp = started.replace(":", "").replace("+", "Z")
    return run_dir / LOGS / f"{hashlib.sha256(source.encode()).hexdigest()[:16]}-seed{seed}-{stamp}.log"


def one_line(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class GenomeStats:
    """One genome's evaluations, summarised for display."""

    val_bpb: float  # mean over ok evaluations; nan if none
    std: float
    count: int  # ok evaluations
    evaluations: int  # all evaluations, failed ones included
    test_bpb: float  # mean over ok evaluations
    status: str  # "ok" if any ok evaluation, else the last status, or "unevaluated"
    reason: str  # the last failure's reason, when status is not ok


def genome_stats(frame: pd.DataFrame) -> dict[str, GenomeStats]:
    """Per genome id, from the archive (rows in recording order)."""
    stats = {}
    for gid, rows in frame.groupby("genome_id", sort=False):
        ok = rows[rows.status == "ok"]
        values = ok.val_bpb[ok.val_bpb.map(math.isfinite)]
        last = rows.iloc[-1]
        stats[gid] = GenomeStats(
            val_bpb=float(values.mean()) if len(values) else math.nan,
            std=float(values.std()) if len(values) > 1 else math.nan,
            count=len(values),
            evaluations=len(rows),
            test_bpb=float(ok.test_bpb.mean()) if len(ok) else math.nan,
            status="ok" if len(values) else str(last.status),
            reason="" if len(values) else one_line(str(last.reason)),
        )
    return stats


UNEVALUATED = GenomeStats(math.nan, math.nan, 0, 0, math.nan, "unevaluated", "")


def fmt_bpb(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def fmt_delta(value: float, sigma: float | None = None) -> str:
    if not math.isfinite(value):
        return "-"
    text = f"{value:+.4f}"
    return text + (f" ({value / sigma:+.1f}σ)" if sigma else "")


def best_text(summary: RunSummary) -> str:
    """'best 2.7012 (1a2b3c4, -3.1σ vs seed 2.7300)', from Population.summary()."""
    best, seed, sigma = summary.best_val_bpb, summary.seed_val_bpb, summary.sigma
    if best is None:
        return "best: none yet"
    text = f"best {best:.4f} ({summary.best_id[:7]}"
    confirmed = summary.best_confirmed
    text += f", confirmed at {summary.best_evaluations} fresh seeds" if confirmed else ", unconfirmed"
    if seed is not None and summary.best_id != summary.seed_id:
        margin = f"{(best - seed) / sigma:+.1f}σ" if sigma else f"{best - seed:+.4f}"
        text += f", {margin} vs seed {seed:.4f}"
    return text + ")"
