"""`python -m evolve import-autoresearch DIR --run-dir R`: an autoresearch checkout's history as a new run.

autoresearch keeps its experiments in git (one commit per tried train.py) and in `results.tsv`, a
tab-separated log with the columns commit, val_bpb, memory_gb, status (keep, discard or crash) and
description. The kept commits, in the log's order, are the line of improvements a user wants to
continue from: the last one becomes the new run's seed, the ones before it its ancestors, committed
with operator "imported" and autoresearch's own figures in their metadata. Those figures came from
autoresearch's clock and scorer, so they are kept for the record only: nothing imported is trained or
scored here, and the run's scores start with the seed's own evaluations.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
from dataclasses import dataclass
from pathlib import Path

from evolve.cli import UsageError
from fitness.interface import check_genome
from population import ImportedGenome, Population, RunDirError
from population.store import normalize_source

RESULTS = "results.tsv"
COLUMNS = ("commit", "val_bpb", "memory_gb", "status", "description")


@dataclass(frozen=True)
class Kept:
    """One `keep` row of results.tsv, with the commit's train.py and time."""

    commit: str  # full hash
    val_bpb: float
    memory_gb: float
    description: str
    source: str
    created: str

    def imported(self) -> ImportedGenome:
        meta = dict(autoresearch_commit=self.commit, autoresearch_val_bpb=self.val_bpb)
        meta["autoresearch_memory_gb"] = self.memory_gb
        text = f"autoresearch {self.commit[:7]}: {self.description} (its val_bpb {self.val_bpb:.6f}, not scored here)"
        return ImportedGenome(self.source, text, self.created, meta)


def main(args: argparse.Namespace) -> int:
    checkout = Path(args.dir)
    kept = _distinct(read_kept(checkout))
    if not kept:
        raise UsageError(f"{str(checkout / RESULTS)!r} has no `keep` rows to import")
    tip = kept[-1]
    problem = check_genome(tip.source)
    if problem:
        raise UsageError(f"train.py of kept commit {tip.commit[:7]} is not a valid genome: {problem}")
    if args.run_dir.exists():
        raise UsageError(f"--run-dir {str(args.run_dir)!r} exists; import-autoresearch makes a new run")
    try:
        with Population(args.run_dir, tip.source, ancestors=tuple(k.imported() for k in kept[:-1])) as pop:
            seed = pop.seed()
    except RunDirError as e:
        raise UsageError(str(e)) from None
    print(f"imported {len(kept) - 1} kept commit(s) as ancestors of the seed {seed.short_id}")
    print(f"seed: autoresearch {tip.commit[:7]} ({tip.description}; its val_bpb {tip.val_bpb:.6f})")
    print(f"evolve it: python -m evolve --run-dir {args.run_dir} --population <N> --generations <G>")
    return 0


def read_kept(checkout: Path) -> list[Kept]:
    """The `keep` rows of DIR/results.tsv in order, each with its commit's train.py."""
    path = checkout / RESULTS
    try:
        rows = list(csv.DictReader(path.read_text().splitlines(), delimiter="\t"))
    except OSError as e:
        raise UsageError(f"cannot read {str(path)!r}: {e.strerror or e}") from None
    if not rows or tuple(rows[0].keys())[: len(COLUMNS)] != COLUMNS:
        raise UsageError(f"{str(path)!r} is not an autoresearch log (expected columns {', '.join(COLUMNS)})")
    return [_kept(checkout, row, n) for n, row in enumerate(rows, start=2) if row["status"].strip() == "keep"]


def _kept(checkout: Path, row: dict, line: int) -> Kept:
    try:
        val_bpb, memory_gb = float(row["val_bpb"]), float(row["memory_gb"])
    except (TypeError, ValueError):
        raise UsageError(f"results.tsv line {line}: val_bpb/memory_gb are not numbers: {row['val_bpb']!r}") from None
    commit = _git(checkout, "rev-parse", "--verify", "--quiet", f"{row['commit'].strip()}^{{commit}}")
    if not commit:
        raise UsageError(f"results.tsv line {line}: commit {row['commit']!r} is not in {str(checkout)!r}")
    source = _git(checkout, "show", f"{commit}:train.py", strip=False)
    if source is None:
        raise UsageError(f"results.tsv line {line}: commit {commit[:7]} has no train.py")
    created = _git(checkout, "show", "-s", "--format=%cI", commit)
    return Kept(commit, val_bpb, memory_gb, (row.get("description") or "").strip(), source, created)


def _distinct(kept: list[Kept]) -> list[Kept]:
    """Keep rows whose train.py differs from the kept row before (a commit may change other files only)."""
    out: list[Kept] = []
    for row in kept:
        if not out or normalize_source(row.source) != normalize_source(out[-1].source):
            out.append(row)
    return out


def _git(checkout: Path, *args: str, strip: bool = True) -> str | None:
    """git's output in `checkout`, or None when git refuses."""
    try:
        done = subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True, check=False)
    except OSError as e:
        raise UsageError(f"cannot run git: {e}") from None
    if done.returncode != 0:
        return None
    return done.stdout.strip() if strip else done.stdout
