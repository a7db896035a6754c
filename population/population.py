"""Population: the one owner of a run's state — genome store, archive, standings and survivors.

Opening an existing run (see population.rundir for the layout) replays the archive in recording
order, which restores the standings, the survivors and the best exactly.

Selection state (standings, survivors, the search's best) lives in population.survivors, fed one
archive row at a time. Only this process writes: a lock refuses a second.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from fitness.interface import check_genome
from fitness.result import RunResult
from population.archive import Archive, make_row, ok_value
from population.errors import InvalidGenome, RunDirError
from population.export import results_tsv
from population.lineage import Lineage, build_lineage, merge_base
from population.messages import Fitness, Genome, ImportedGenome, LLMSpend, PopulationConfig, RunSummary
from population.rundir import ARCHIVE, MARKER, check_run_dir, lock, write_atomic
from population.store import CHANGES, GenomeStore
from population.survivors import Survivors

log = logging.getLogger(__name__)
IMPORTED = "imported"  # the operator of a genome brought in from another tool's history


class Population:
    """Create (with `seed_source`) or resume the run in `run_dir`. Use `close()` or a `with` block."""

    def __init__(
        self,
        run_dir: str | Path,
        seed_source: str | None = None,
        config: PopulationConfig | None = None,
        read_only: bool = False,
        ancestors: tuple[ImportedGenome, ...] = (),  # a new run only: the seed's imported history, oldest first
    ):
        self.run_dir = Path(run_dir)
        self.config = config or PopulationConfig()
        fresh = check_run_dir(self.run_dir, None if read_only else seed_source)
        if not read_only:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self._by_status: dict[str, int] = {}
        self._by_kind: dict[str, int] = {}
        self._evaluated: set[str] = set()  # genomes with a finished (not interrupted) evaluation
        self._llm_micro_usd = 0
        self._best_ref: str | None = None  # what refs/heads/best points at
        with contextlib.ExitStack() as undo:  # a failed open must not keep the lock
            self._lock = None if read_only else lock(self.run_dir)
            if self._lock is not None:
                undo.callback(os.close, self._lock)
            # Rows before genomes: a writer commits a genome before recording it, so a reader of a live
            # run finds every genome its rows name.
            self._archive = Archive(self.run_dir / ARCHIVE, read_only=read_only)
            self._store = GenomeStore.create(self.run_dir) if fresh else GenomeStore.load(self.run_dir)
            undo.callback(self._store.close)
            self._seed_id = self._create(seed_source, ancestors) if fresh else self._read_marker(seed_source)
            self._state = Survivors(self._seed_id, self.config)
            self._replay()
            undo.pop_all()

    @classmethod
    def open(cls, run_dir: str | Path, seed_source: str | None, config: PopulationConfig) -> Population:
        return cls(run_dir, seed_source, config)

    @classmethod
    def read(cls, run_dir: str | Path, config: PopulationConfig | None = None) -> Population:
        """A read-only view of a run, finished or still being written by another process: no lock, no
        writes; `add` and `record` refuse. It is a snapshot: open it again to see later evaluations."""
        return cls(run_dir, None, config, read_only=True)

    def close(self) -> None:
        self._store.close()
        if self._lock is not None:
            os.close(self._lock)

    def __enter__(self) -> Population:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- genomes -------------------------------------------------------------------------------
    def add(
        self,
        source: str,
        parents: tuple[str, ...] | list[str],
        operator: str,
        description: str,
        generation: int,
        meta: dict | None = None,
        created: str | None = None,
        changes: tuple[str, ...] = (),
    ) -> tuple[Genome, bool]:
        """Commit a child; (existing genome, False) if its source is already stored. Raises InvalidGenome."""
        self._check_writable()
        existing = self._store.find_source(source)
        if existing is not None:
            return self._store.get(existing), False
        reason = check_genome(source)
        if reason is not None:
            raise InvalidGenome(f"invalid genome ({operator}: {description[:60]!r}): {reason}")
        resolved = tuple(dict.fromkeys(self._store.resolve(p) for p in parents))
        if not resolved:
            raise ValueError(f"only the seed may have no parents; got a parentless {operator!r} child")
        stamp = created or datetime.now(timezone.utc).isoformat(timespec="seconds")
        stored = {**(meta or {}), **({CHANGES: list(changes)} if changes else {})}
        genome = self._store.commit(
            source, resolved, operator, description, generation=generation, created=stamp, meta=stored
        )
        return self._store.get(genome.id), True  # as every reader sees it: changes out of meta

    def has_source(self, source: str) -> bool:
        """Whether a genome with this source (up to normalisation) is already stored."""
        return self._store.find_source(source) is not None

    def genome(self, id_or_prefix: str) -> Genome:
        """The genome with this id or unique id prefix; raises UnknownGenome / AmbiguousGenome."""
        return self._store.get(id_or_prefix)

    def seed(self) -> Genome:
        return self._store.get(self._seed_id)

    def merge_base(self, a: str, b: str) -> Genome | None:
        """The most recent common ancestor of two genomes (context for a crossover)."""
        base = merge_base(self._store.resolve(a), self._store.resolve(b), self._store.parents_of, self._store.order())
        return self._store.get(base) if base else None

    def lineage(self, genome_id: str) -> Lineage:
        return build_lineage(self._store.resolve(genome_id), self._store.get, lambda g: self.fitness(g).mean)

    # --- evaluations ---------------------------------------------------------------------------
    def record(
        self,
        genome_id: str,
        result: RunResult,
        *,
        kind: str = "child",
        generation: int,
        node: str = "",
        worker: str = "",
        started: str,
        finished: str,
        llm: LLMSpend | None = None,
    ) -> None:
        """Durably append one evaluation of a genome and update standings, survivors and the best."""
        self._check_writable()
        genome = self._store.get(genome_id)
        where = dict(node=node, worker=worker, started=started, finished=finished, llm=llm)
        row = self._archive.append(make_row(genome, result, kind=kind, generation=generation, **where))
        self._apply(row)
        self._update_best_ref()

    def archive(self) -> pd.DataFrame:
        """Every evaluation, one row each (columns: population.archive.SCHEMA)."""
        return self._archive.frame()

    def fitness(self, genome_id: str) -> Fitness:
        return self._state.fitness(self._store.resolve(genome_id))

    def noise_sigma(self) -> float | None:
        """Pooled std of val_bpb between repeated evaluations (the seed's first); None until one exists."""
        return self._state.sigma()

    def unevaluated(self) -> list[Genome]:
        """Committed genomes (the seed aside) with no finished evaluation: children in flight when a run
        stopped, or interrupted by it. A resumed run trains these first. Not among them: an unevaluated
        genome another was built from (a child rebased onto a new best before it trained: evolve.rebase)."""
        order = self._store.order()
        built_from = {p for g in order if self._store.operator_of(g) == "rebase" for p in self._store.parents_of(g)}
        ids = [g for g in order if g != self._seed_id and g not in self._evaluated and g not in built_from]
        ids = [g for g in ids if self._store.operator_of(g) != IMPORTED]  # never trained here
        return [self._store.get(g) for g in ids]

    def export_results_tsv(self, path: str | Path) -> Path:
        path = Path(path)
        write_atomic(path, results_tsv(self._archive.frame(), self._seed_id, self.config))
        return path

    # --- selection -----------------------------------------------------------------------------
    def survivors(self) -> list[Genome]:
        """The current population, best first (empty until a genome has an ok evaluation)."""
        return [self._store.get(c.id) for c in self._state.ranked()]

    def unrelated(self, genome_id: str) -> list[Genome]:
        """The survivors that are neither ancestors nor descendants of `genome_id`, best first (transplant
        donors: another lineage, with a common ancestor)."""
        gid = self._store.resolve(genome_id)
        bases = {g.id: self.merge_base(gid, g.id) for g in self.survivors()}
        return [self._store.get(g) for g, base in bases.items() if base is not None and base.id not in (g, gid)]

    def select_parents(self, k_parents: int, rng: random.Random) -> list[Genome]:
        """Tournament picks among the survivors, distinct while there are enough of them."""
        return [self._store.get(g) for g in self._state.select_parents(k_parents, rng)]

    def best(self) -> Genome | None:
        """The best confirmed genome (evolve.confirm), or before any, the search's best."""
        pick = self._state.pick()
        return self._store.get(pick) if pick else None

    def repeat_candidates(self, n: int) -> list[str]:
        """Up to n genome ids that deserve a repeat evaluation now (the same ids until it is recorded)."""
        return self._state.repeat_candidates(n)

    def confirm_candidates(self, n: int, seeds: int) -> list[str]:
        """Of the top n genomes by search score, those not yet confirmed at `seeds` fresh seeds."""
        return self._state.confirm_candidates(n, seeds)

    def summary(self) -> RunSummary:
        best, fitness, confirmed = self._state.pick_fitness()
        seed = self._state.seed_fitness(confirmed)
        return RunSummary(
            genomes=len(self._store),
            evaluations=len(self._archive),
            children=self._state.children,
            generation=self._state.children // self.config.population_size,
            by_status=dict(sorted(self._by_status.items())),
            best_id=best,
            best_val_bpb=fitness.mean if best else None,
            best_evaluations=fitness.count if best else 0,
            best_confirmed=confirmed,
            seed_id=self._seed_id,
            seed_val_bpb=seed.mean if seed.count else None,
            sigma=self.noise_sigma(),
            survivors=len(self._state.ids),
            llm_cost_usd=self._llm_micro_usd / 1e6,
        )

    # --- internals -----------------------------------------------------------------------------
    def _create(self, seed_source: str, ancestors: tuple[ImportedGenome, ...]) -> str:
        reason = check_genome(seed_source)
        if reason is not None:
            raise InvalidGenome(f"invalid seed genome: {reason}")
        parents: tuple[str, ...] = ()
        for old in ancestors:
            imported = self._store.commit(
                old.source, parents, IMPORTED, old.description, generation=0, created=old.created, meta=old.meta
            )
            parents = (imported.id,)
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        seed = self._store.commit(seed_source, parents, "seed", "seed genome", generation=0, created=stamp, meta={})
        self._store.set_best(seed.id)
        write_atomic(self.run_dir / MARKER, json.dumps({"format": 1, "seed": seed.id}) + "\n")
        log.info("created run %s with seed %s", self.run_dir, seed.short_id)
        return seed.id

    def _read_marker(self, seed_source: str | None) -> str:
        try:
            seed_id = json.loads((self.run_dir / MARKER).read_text())["seed"]
            self._store.resolve(seed_id)
        except (ValueError, KeyError, TypeError, LookupError):
            raise RunDirError(f"{str(self.run_dir / MARKER)!r} is damaged or names no stored seed") from None
        if seed_source is not None and self._store.find_source(seed_source) != seed_id:
            log.warning("resuming %s: its seed %s differs from the seed source given", self.run_dir, seed_id[:7])
        return seed_id

    def _replay(self) -> None:
        for row in self._archive.rows():
            if row["genome_id"] not in self._store.order():
                raise RunDirError(f"archive row {row['eval_id']} names unknown genome {row['genome_id']!r}")
            self._apply(row)
        self._update_best_ref()
        log.info("opened run %s: %d genomes, %d evaluations", self.run_dir, len(self._store), len(self._archive))

    def _apply(self, row: dict) -> None:
        """Fold one archive row into the in-memory state (live and on resume alike)."""
        gid = row["genome_id"]
        self._by_status[row["status"]] = self._by_status.get(row["status"], 0) + 1
        self._by_kind[row["kind"]] = self._by_kind.get(row["kind"], 0) + 1
        finished = row["status"] != "interrupted"
        if finished:
            self._evaluated.add(gid)
        self._llm_micro_usd += round(row["llm_cost_usd"] * 1e6)  # integer sum: exact after resume
        counted, confirm = row["kind"] == "child" and finished, row["kind"] == "confirm"
        self._state.apply(gid, ok_value(row), row["source_chars"], counted, row["seed"], confirm)

    def _check_writable(self) -> None:
        if self._lock is None:
            raise RunDirError(f"run directory {str(self.run_dir)!r} was opened read-only")

    def _update_best_ref(self) -> None:
        best = self._state.pick()
        if best is not None and best != self._best_ref and self._lock is not None:
            try:
                self._store.set_best(best)
            except OSError as e:  # a full disk: the ref is a convenience, the row is recorded; retried next time
                log.warning("refs/heads/best not moved to %s: %s", best[:7], e)
                return
            self._best_ref = best
