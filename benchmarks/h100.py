"""Benchmark: the seed genome under the `h100` profile on a real GPU: val_bpb, tokens/s, MFU and overhead.

One child, trained and scored by the real trainer (`trainer.run`, a warm scorer as in a run's worker), for
the profile's 300 s budget. Reports the harness's val_bpb and test_bpb, training tokens per second (training
tokens / training seconds on the harness clock), model FLOPs utilisation, and the non-training time by phase
against the budget (target: under 5% of 300 s).

MFU counts the seed project's way: 6 FLOPs per parameter per token for every matrix the model multiplies
by (all parameters but the input embedding, a lookup), plus 12 x depth x width x seq_len for attention
scores and mixing, over the GPU's dense bf16 peak. It reads depth and width from the genome's knobs, so it
applies to the seed genome and to children that keep its knob names.

`--dataset shakespeare` runs the profile on the embedded plays instead of climbmix (for a GPU machine
that can't download it). The plays' validation split is smaller than the profile's 40 x 524,288 scored
tokens, so every whole validation row is scored instead; and with ~1M training tokens, 300 s goes through
them hundreds of times, so that val_bpb measures memorisation, not the seed project's setting.

`--genome PATH` benches another train.py instead of the seed, e.g. autoresearch's own, which runs
unmodified (its `prepare` and `kernels` are the harness's stand-ins; results go to h100-<name>.json).

    python -m benchmarks.h100                          # climbmix (python -m evolve prepare --profile h100)
    python -m benchmarks.h100 --dataset shakespeare --out /tmp/h100
    python -m benchmarks.h100 --genome ~/autoresearch/train.py
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
from pathlib import Path

from benchmarks import commit, ready_scorer
from benchmarks.population_bench import machine
from experiments import profiles
from fitness import data
from fitness.profile import Profile
from trainer import TrainerConfig, run, sandbox, scorer_process

SEED = Path(__file__).resolve().parents[1] / "trainer" / "seeds" / "train.py"
BUDGET_SHARE_TARGET = 0.05
# Dense bf16 tensor-core peak, FLOP/s, by a substring of torch.cuda.get_device_name (SXM parts).
PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}


def knob(source: str, name: str, profile: str):
    """A genome's UPPER_CASE knob: a constant, or a {profile: value}[PROFILE] table read for `profile`."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            value = node.value
            if isinstance(value, ast.Subscript):
                return ast.literal_eval(value.value)[profile]
            return ast.literal_eval(value)
    raise KeyError(f"the genome has no knob {name}")


def model_width(source: str, profile: Profile) -> int:
    """MODEL_DIM, or autoresearch's DEPTH * ASPECT_RATIO rounded up to a multiple of HEAD_DIM."""
    try:
        return knob(source, "MODEL_DIM", profile.name)
    except KeyError:
        head = knob(source, "HEAD_DIM", profile.name)
        return -(-knob(source, "DEPTH", profile.name) * knob(source, "ASPECT_RATIO", profile.name) // head) * head


def flops_per_token(source: str, profile: Profile, num_params: int) -> int:
    depth, width = knob(source, "DEPTH", profile.name), model_width(source, profile)
    matrix_params = num_params - profile.vocab_size * width  # all but the input embedding
    return 6 * matrix_params + 12 * depth * width * profile.seq_len


def peak_flops(device_name: str) -> float | None:
    return next((peak for key, peak in PEAK_BF16.items() if key in device_name), None)


def on_dataset(profile: Profile, dataset: str) -> Profile:
    """`profile` on another dataset; an embedded one is scored on every whole row its smaller splits hold."""
    if dataset == profile.dataset:
        return profile
    moved = dataclasses.replace(profile, dataset=dataset, num_shards=0)
    cache = data.prepare(dataset, moved.vocab_size, (moved.seq_len,), 0)
    rows = min(len(cache.rows(split, moved.seq_len)) for split in ("val", "test"))
    return dataclasses.replace(moved, eval_tokens=min(profile.eval_tokens, rows * moved.seq_len))


def bench(profile: Profile, source: str, seed: int) -> dict:
    data.prepare(profile.dataset, profile.vocab_size, (profile.seq_len,), profile.num_shards)
    threads = os.cpu_count() or 1
    scorer = scorer_process(threads)
    try:
        scorer_start_s = ready_scorer(scorer, profile, threads, 300.0, "h100")
        result = run(source, profile, seed=seed, config=TrainerConfig(threads=threads, device="cuda"), scorer=scorer)
    finally:
        scorer.close()
    report = {"scorer_start_s": scorer_start_s, "result": result.to_dict()}
    if not result.ok:
        return report
    return report | rates(result.to_dict(), profile, source)


def rates(result: dict, profile: Profile, source: str) -> dict:
    """Throughput two ways. End to end: all tokens over train.py's whole time on the trainer's clock (model
    build, torch.compile, the untimed warm-up steps and the export included). Steady: the tokens served once
    the budget's clock started, over the budget; it assumes every batch request is the same size (true of the
    seed and of autoresearch's script), so the untimed requests' tokens are tokens / requests apiece."""
    per_token = flops_per_token(source, profile, result["num_params"])
    peak = peak_flops(result["device"])
    requests = result["num_steps"]
    timed_tokens = result["tokens"] * (requests - profile.untimed_steps) / requests if requests else 0
    end_to_end = result["tokens"] / result["training_seconds"]
    steady = timed_tokens / profile.budget_seconds
    return {
        "tokens_per_s": end_to_end,
        "steady_tokens_per_s": steady,
        "flops_per_token": per_token,
        "peak_bf16_flops": peak,
        "mfu": per_token * end_to_end / peak if peak else None,
        "steady_mfu": per_token * steady / peak if peak else None,
        "overhead_share_of_budget": (result["total_seconds"] - result["training_seconds"]) / profile.budget_seconds,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("climbmix", "shakespeare"), default="climbmix")
    parser.add_argument("--budget", type=float, help="training seconds (default: the profile's 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--genome", type=Path, default=SEED, help="the train.py to bench (default: the seed)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("h100: needs a CUDA GPU and torch sees none here")
    profile = profiles.load("h100")
    profile = on_dataset(profile.with_budget(args.budget) if args.budget else profile, args.dataset)
    source = args.genome.read_text()
    measured = bench(profile, source, args.seed)
    report = {"benchmark": "h100", "machine": machine(), "commit": commit(), "profile": profile.to_dict()}
    report["torch"] = {"version": torch.__version__, "cuda": torch.version.cuda}
    report |= {"sandbox": sandbox.bwrap_path() is not None, "target_overhead_share": BUDGET_SHARE_TARGET}
    report |= measured
    args.out.mkdir(parents=True, exist_ok=True)
    name = "h100.json" if args.genome == SEED else f"h100-{args.genome.parent.name or args.genome.stem}.json"
    report["genome"] = str(args.genome)
    (args.out / name).write_text(json.dumps(report, indent=2) + "\n")
    print_summary(report)
    return report


def print_summary(report: dict) -> None:
    r = report["result"]
    print(f"status {r['status']} {r['reason']}".rstrip())
    print(f"val_bpb {r['val_bpb']:.6f} test_bpb {r['test_bpb']:.6f} on {report['profile']['dataset']}")
    print(f"steps {r['num_steps']} tokens {r['tokens']:,} training {r['training_seconds']:.1f} s on {r['device']}")
    if "tokens_per_s" in report:

        def mfu(key):
            return f"{100 * report[key]:.1f}%" if report[key] is not None else "unknown (GPU peak not listed)"

        print(f"end to end: tokens/s {report['tokens_per_s']:,.0f} MFU {mfu('mfu')}")
        print(f"steady (timed steps): tokens/s {report['steady_tokens_per_s']:,.0f} MFU {mfu('steady_mfu')}")
        share = report["overhead_share_of_budget"]
        print(f"overhead {r['total_seconds'] - r['training_seconds']:.1f} s = {100 * share:.1f}% of the budget")
    print("  " + ", ".join(f"{name} {seconds:.2f}" for name, seconds in r["phases"].items()))


if __name__ == "__main__":
    main()
