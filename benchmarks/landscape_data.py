"""Real evaluations for the surrogate landscape: knob vectors and scores recovered from the search benchmark.

benchmarks/results/search_tokens.json (the search benchmark's first design) holds every evaluation of its
greedy, random and evolve runs (cpu profile, 49,152 training tokens per child, offline operators), each
child with its knob changes ("NAME old -> new") but not its parent. The parent is recovered by replay:
random mutates the seed; greedy mutates the incumbent (its best seed-0 score so far); an evolve child's
parent is the one earlier genome of its run
whose knobs hold every "old" value (children with no unique such genome, and merges, are left out).
The seed genome's own noise evaluations (training seeds 0-4) are kept as group "noise-0".
Repeats and confirmations share their genome's knobs, so every genome's scores at other training seeds
are kept too: they measure the noise and the per-seed offset.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from mutators.offline import find_knobs

REPO = Path(__file__).resolve().parents[1]
SEARCH_JSON = REPO / "benchmarks" / "results" / "search_tokens.json"  # the first design's runs
SEED_GENOME = REPO / "trainer" / "seeds" / "train.py"
PROFILE = "cpu"
_CHANGE = re.compile(r"([A-Z][A-Z0-9_]*(?:\[\w+\])?) (\S+) -> (\S+)")


@dataclass(frozen=True)
class Observation:
    knobs: tuple[tuple[str, float], ...]  # (name, value) in the seed genome's knob order
    training_seed: int
    val_bpb: float
    seconds: float  # training seconds (the token budget's cost of this genome on one core)
    group: str  # "method-seed": one search run (held out together when the fit is scored)

    @property
    def values(self) -> dict[str, float]:
        return dict(self.knobs)


def seed_knobs() -> dict[str, float]:
    return {k.name: k.value for k in find_knobs(SEED_GENOME.read_text(), PROFILE)}


def changes(description: str) -> list[tuple[str, float, float]]:
    """(name, old, new) for every 'NAME old -> new' in a child's description."""
    return [(name, float(old.rstrip(",")), float(new.rstrip(","))) for name, old, new in _CHANGE.findall(description)]


def load(path: Path = SEARCH_JSON) -> list[Observation]:
    report = json.loads(path.read_text())
    out = _replay("noise", {"seed": 0, "evaluations": report["noise"]["evaluations"]})
    for method, block in report["methods"].items():
        for run in block["runs"]:
            out += _replay(method, run)
    return out


def _replay(method: str, run: dict) -> list[Observation]:
    seed = seed_knobs()
    genomes: dict[str, dict[str, float]] = {}  # genome hash -> knobs
    order: list[str] = []
    incumbent, best = None, float("inf")
    rows = list(run["evaluations"]) + list(run.get("confirm", {}).get("evaluations", []))
    out = []
    for row in rows:
        gid = row["genome"]
        if gid not in genomes:
            parent = _parent(method, row, genomes, order, incumbent, seed)
            if parent is None:
                continue
            genomes[gid] = parent | {name: new for name, _, new in changes(row["description"])}
            order.append(gid)
        if row["status"] != "ok" or row["val_bpb"] is None:
            continue
        knobs = tuple((name, float(genomes[gid][name])) for name in seed)
        group = f"{method}-{run['seed']}"
        out.append(Observation(knobs, int(row["training_seed"]), row["val_bpb"], row["training_seconds"], group))
        if row["training_seed"] == 0 and row["val_bpb"] < best:
            incumbent, best = gid, row["val_bpb"]
    return out


def _parent(method, row, genomes, order, incumbent, seed) -> dict[str, float] | None:
    if row["kind"] in ("seed", "noise") or row["description"] in ("seed", "seed genome"):
        return dict(seed)
    if row["kind"] != "child" or row["description"].startswith("merge"):
        return None
    if method == "random":
        return dict(seed)
    if method == "greedy":
        return dict(genomes[incumbent]) if incumbent else None
    olds = [(name, old) for name, old, _ in changes(row["description"])]
    matches = [g for g in order if all(abs(genomes[g][n] - old) <= 1e-9 * max(1.0, abs(old)) for n, old in olds)]
    distinct = {tuple(sorted(genomes[g].items())) for g in matches}
    return dict(genomes[matches[-1]]) if len(distinct) == 1 else None
