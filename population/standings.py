"""Standings: every genome's ok val_bpb values, kept ranked as evaluations arrive.

The ranking is a sorted list updated by bisection, so recording an evaluation and asking for the
best stay cheap at 10,000+ genomes; the pooled noise sigma is kept as running sums for the same reason.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator

from population.messages import Fitness
from population.selection import Candidate


class Standings:
    """`root` (the seed) and genomes with `confirm` ok evaluations are trusted (see selection.incumbent)."""

    def __init__(self, root: str, confirm: int) -> None:
        self._root = root
        self._confirm = confirm
        self._values: dict[str, list[float]] = {}  # ok val_bpb per evaluated genome ([] = never ok)
        self._sizes: dict[str, int] = {}
        self._keys: list[tuple[float, int, str]] = []  # (mean, size, id), best first
        self._trusted: list[tuple[float, int, str]] = []  # the same, for trusted genomes only
        self._ss = 0.0  # sum over genomes of squared deviations from their own mean
        self._dof = 0

    @property
    def root(self) -> str:
        return self._root

    def __contains__(self, genome_id: str) -> bool:
        return genome_id in self._values

    def add(self, genome_id: str, val_bpb: float | None, size: int) -> None:
        """One evaluation: `val_bpb` None (or non-finite) for a failed one."""
        values = self._values.setdefault(genome_id, [])
        self._sizes[genome_id] = size
        if val_bpb is None or not math.isfinite(val_bpb):
            return
        if values:
            self._unrank(genome_id)
        values.append(float(val_bpb))
        self._ss += _ss(values)
        self._dof += len(values) - 1
        key = self._key(genome_id)
        bisect.insort(self._keys, key)
        if self._trusts(genome_id):
            bisect.insort(self._trusted, key)

    def fitness(self, genome_id: str) -> Fitness:
        return Fitness.of(self._values.get(genome_id, []))

    def candidate(self, genome_id: str) -> Candidate:
        return Candidate(genome_id, self.fitness(genome_id), self._sizes.get(genome_id, 0))

    def ranked(self) -> Iterator[Candidate]:
        """Genomes with an ok evaluation, best first, built lazily (callers often read a prefix)."""
        return (self.candidate(gid) for _, _, gid in self._keys)

    def leader(self) -> Candidate | None:
        """The genome with the best mean, trusted or not."""
        return self.candidate(self._keys[0][2]) if self._keys else None

    def anchor(self) -> Candidate | None:
        """The best trusted genome."""
        return self.candidate(self._trusted[0][2]) if self._trusted else None

    def sigma(self) -> float | None:
        """Pooled within-genome std of repeated evaluations; None before any genome has two."""
        return math.sqrt(max(self._ss, 0.0) / self._dof) if self._dof else None

    def counts(self) -> tuple[int, int]:
        """(genomes evaluated, genomes with an ok evaluation)."""
        return len(self._values), len(self._keys)

    def _trusts(self, genome_id: str) -> bool:
        return genome_id == self._root or len(self._values[genome_id]) >= self._confirm

    def _unrank(self, genome_id: str) -> None:
        values, key = self._values[genome_id], self._key(genome_id)
        self._keys.remove(key)
        if self._trusts(genome_id):
            self._trusted.remove(key)
        self._ss -= _ss(values)
        self._dof -= len(values) - 1

    def _key(self, genome_id: str) -> tuple[float, int, str]:
        values = self._values[genome_id]
        return (sum(values) / len(values), self._sizes[genome_id], genome_id)


def _ss(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values)
