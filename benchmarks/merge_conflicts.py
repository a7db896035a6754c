"""Merge conflicts on real changes: git merge-file alone against the knob-level merge (mutators.knobmerge).

The changes are the evolve runs' children in benchmarks/results/search.json: each child's knob changes
("NAME old -> new", as the hyperparam operator made them). A child's parent is not recorded there (and
replay finds it for few), so every pair of children's change sets is applied to the seed genome as two
siblings and merged over the seed. Reported: the share of pairs git merge-file conflicts on, the share the
knob-level merge leaves a textual conflict on, and the share where both changed one knob differently
(settled for the fitter parent by mutators.merge). Pairs whose sources coincide are left out.

    python -m benchmarks.merge_conflicts               # ~1 min; writes benchmarks/results/merge_conflicts.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from benchmarks import commit
from benchmarks.landscape_data import PROFILE, SEARCH_JSON, SEED_GENOME, changes
from mutators.knobmerge import knob_three_way, three_way
from mutators.offline import find_knobs, rewrite

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.merge_conflicts", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=RESULTS / "merge_conflicts.json")
    args = p.parse_args(argv)
    seed = SEED_GENOME.read_text()
    runs = json.loads(SEARCH_JSON.read_text())["methods"]["evolve"]["runs"]
    counts = {"pairs": 0, "git_merge_file_conflicts": 0, "knob_merge_conflicts": 0, "knob_clashes": 0}
    children = {row["genome"]: row["description"] for run in runs for row in run["evaluations"] if _is_child(row)}
    sources = sorted({_apply(seed, changes(text)) for text in children.values()} - {seed})
    for a, b in itertools.combinations(sources, 2):
        done = knob_three_way(seed, a, b, PROFILE)
        counts["pairs"] += 1
        counts["git_merge_file_conflicts"] += three_way(seed, a, b)[1] > 0
        counts["knob_merge_conflicts"] += done.conflicts > 0
        counts["knob_clashes"] += bool(done.clashes)
    rates = {k: round(v / counts["pairs"], 3) for k, v in counts.items() if k != "pairs"}
    report = {
        "benchmark": "merge_conflicts",
        "commit": commit(),
        "command": "python -m benchmarks.merge_conflicts " + " ".join(sys.argv[1:] if argv is None else argv),
        "changes": "evolve children of benchmarks/results/search.json, each pair applied to the seed as siblings",
        "counts": counts,
        "rates": rates,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({"counts": counts, "rates": rates}))
    return 0


def _is_child(row: dict) -> bool:
    return row["kind"] == "child" and bool(changes(row["description"])) and not row["description"].startswith("merge")


def _apply(seed: str, moved: list[tuple[str, float, float]]) -> str:
    """The seed with each knob set to its new value (an int knob stays an int)."""
    by_name = {k.name: k for k in find_knobs(seed, PROFILE)}
    return rewrite(seed, [(by_name[n], int(new) if isinstance(by_name[n].value, int) else new) for n, _, new in moved])


if __name__ == "__main__":
    raise SystemExit(main())
