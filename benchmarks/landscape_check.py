"""Check the surrogate landscape where its data cannot: real children under a time budget.

The landscape is fitted to evaluations under a token budget and moved to a time budget by a model
(benchmarks.landscape). Here a few genomes — the seed and single-knob edits along the axes that model
says matter most, written into the real train.py by mutators.offline.rewrite — train for real on the
cpu profile with a 10 s budget, one thread, training seed 0; the report is the rank correlation of the
landscape's prediction with what they scored. Results go to benchmarks/results/landscape_check.json,
which benchmarks.simulate reports beside the held-out fit. The budget is wall-clock until the harness
counts CPU-seconds: run it on a quiet machine (the load average is recorded), or a loaded one measures
the load, not the genomes.

    python -m benchmarks.landscape_check          # 14 genomes, about 10 minutes on one core
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np

from benchmarks import commit
from benchmarks.landscape import BUDGET_SECONDS, SurrogateLandscape
from benchmarks.landscape_data import PROFILE, SEED_GENOME
from benchmarks.landscape_fit import spearman
from benchmarks.population_bench import machine
from mutators.offline import find_knobs, rewrite

OUT = Path(__file__).resolve().parent / "results" / "landscape_check.json"
EDITS = (
    {},
    {"MODEL_DIM[cpu]": 64},
    {"MODEL_DIM[cpu]": 256},
    {"DEPTH[cpu]": 2},
    {"DEPTH[cpu]": 5},
    {"MLP_RATIO": 2},
    {"DEVICE_BATCH_SIZE[cpu]": 8},
    {"DEVICE_BATCH_SIZE[cpu]": 32},
    {"GRAD_ACCUM_STEPS[cpu]": 2},
    {"UNEMBED_LR": 0.008},
    {"MATRIX_LR": 0.04},
    {"WARMUP_FRAC": 0.05},
    {"WARMDOWN_FRAC": 0.25},
    {"MODEL_DIM[cpu]": 64, "DEPTH[cpu]": 2, "UNEMBED_LR": 0.008},
)


def genome(edits: dict) -> str:
    source = SEED_GENOME.read_text()
    knobs = {k.name: k for k in find_knobs(source, PROFILE)}
    return rewrite(source, [(knobs[name], value) for name, value in edits.items()])


def main() -> int:
    from benchmarks.real_landscape import Evaluator
    from experiments import profiles

    profile = dataclasses.replace(profiles.load(PROFILE), eval_tokens=16384, causality_probes=1)
    profile = profile.with_budget(BUDGET_SECONDS)
    landscape = SurrogateLandscape.fitted(0)
    load_before = os.getloadavg()
    evaluator = Evaluator(profile, "landscape-check")
    rows = []
    try:
        for edits in EDITS:
            row = evaluator(genome(edits), 0, "check", json.dumps(edits))
            predicted = landscape.mean(landscape.seed_genome() | edits)
            rows.append({"edits": edits, "predicted": round(predicted, 4), **row})
    finally:
        evaluator.close()
    ok = [r for r in rows if r["status"] == "ok"]
    rho = spearman(np.array([r["predicted"] for r in ok]), np.array([r["val_bpb"] for r in ok]))
    report = {
        "benchmark": "landscape_check", "machine": machine(), "commit": commit(),
        "command": "python -m benchmarks.landscape_check", "profile": profile.to_dict(),
        "spearman": round(rho, 3), "ok": len(ok), "genomes": len(rows), "rows": rows,
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }  # fmt: skip
    OUT.write_text(json.dumps(report, indent=1) + "\n")
    print(f"landscape_check: Spearman {rho:.3f} over {len(ok)} genomes scored ok of {len(rows)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
