"""`python -m evolve replay GENOME --run-dir D [--repeats N] [--profile P]`: train a genome again, as recorded.

The profile (with the run's budget) comes from run.json, the seed from the genome's first recorded
evaluation. Each replay is recorded in the archive as an evaluation of kind "replay", so replay opens
the run for writing and refuses while the run is going. It prints the recorded and replayed val_bpb,
the difference in absolute terms and in the run's noise sigma, and every way this machine differs
from the one the run recorded (provenance.differences).
"""

from __future__ import annotations

import argparse
import math
import socket
import statistics
from datetime import datetime, timezone

import pandas as pd

from evolve import provenance
from evolve.cli import UsageError
from evolve.runview import fmt_bpb, open_run, resolve, run_dir_arg, run_record
from experiments import profiles
from fitness.profile import Profile
from fitness.result import RunResult
from population import Genome


def main(args: argparse.Namespace) -> int:
    from trainer import TrainerConfig, run, scorer_process

    if args.repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {args.repeats}")
    run_dir = run_dir_arg(args.run_dir)
    record = run_record(run_dir)
    with open_run(run_dir, write=True) as pop:
        genome = resolve(pop, args.genome)
        frame = pop.archive()
        row = recorded_row(frame, genome)
        profile, notes = replay_profile(record, row, args.profile)
        device, threads, more = replay_device(record, row, args.threads)
        sigma = pop.noise_sigma()
        print(_header(genome, row, profile, f"{device} ({threads} thread{'s' if threads > 1 else ''})"))
        for note in [*notes, *more, *environment_notes(record, profile)]:
            print(f"note: {note}")
        config, scorer, results = TrainerConfig(threads=threads, device=device), scorer_process(threads), []
        try:
            for i in range(args.repeats):
                started = _now()
                result = run(genome.source, profile, seed=int(row.seed), config=config, scorer=scorer, hide=(run_dir,))
                pop.record(genome.id, result, kind="replay", generation=genome.generation,
                           node=socket.gethostname(), worker="replay", started=started, finished=_now())  # fmt: skip
                results.append(result)
                print(f"replay {i + 1}/{args.repeats}: {_describe(result)}", flush=True)
        finally:
            scorer.close()
    print("\n".join(comparison(frame, genome, row, results, sigma)))
    return 0 if all(r.ok for r in results) else 1


def recorded_row(frame: pd.DataFrame, genome: Genome) -> pd.Series:
    """The genome's first ok evaluation other than a replay (else its first evaluation): what to redo."""
    rows = frame[(frame.genome_id == genome.id) & (frame.kind != "replay")]
    if not len(rows):
        raise UsageError(f"genome {genome.short_id} has no recorded evaluation to replay")
    ok = rows[rows.status == "ok"]
    return (ok if len(ok) else rows).iloc[0]


def replay_profile(record: dict, row: pd.Series, name: str | None) -> tuple[Profile, list[str]]:
    """The profile the row was trained under (run.json's, at the row's budget), or the named one."""
    if name is not None and name != row.profile:
        try:
            chosen = profiles.load(name)
        except profiles.UnknownProfile as e:
            raise UsageError(str(e)) from None
        return chosen, [f"replaying under profile {name!r}, recorded under {row.profile!r}: scores are not comparable"]
    notes = []
    try:
        profile = Profile(**record["profile"])
    except KeyError:
        profile = profiles.load(row.profile)
        notes.append(f"run.json has no profile: using the {row.profile!r} preset at the recorded budget")
    except TypeError as e:
        raise UsageError(f"run.json's profile does not fit this version of evolve: {e}") from None
    if profile.name != row.profile:
        raise UsageError(f"evaluation {row.eval_id} ran under profile {row.profile!r}, run.json says {profile.name!r}")
    return profile.with_budget(row.budget_seconds), notes


def replay_device(record: dict, row: pd.Series, threads: int | None) -> tuple[str, int, list[str]]:
    """cpu with the recorded thread count, or cuda when the row ran on a GPU and this machine has one."""
    import torch

    from trainer.cgroup import available_cores

    recorded = str(row.device)
    on_cpu = recorded.startswith("cpu") or record.get("device") == "cpu"
    notes = []
    if not on_cpu and not torch.cuda.is_available():
        notes.append(f"recorded on {recorded}; this machine has no CUDA GPU, so it replays on cpu")
        on_cpu = True
    cores = available_cores()
    wanted = threads or (int(recorded.split(":")[1]) if recorded.startswith("cpu:") else cores)
    if wanted > cores:
        notes.append(f"recorded with {wanted} threads; this machine has {cores} cores")
        wanted = cores
    return ("cpu" if on_cpu else "cuda"), wanted, notes


def environment_notes(record: dict, profile: Profile) -> list[str]:
    recorded = record.get("environment")
    if not recorded:
        return ["run.json records no environment: cannot say whether this machine differs"]
    differences = provenance.differences(recorded, provenance.environment(profile))
    return [f"environment: {d}" for d in differences] or ["environment: same hardware and software as recorded"]


def comparison(frame: pd.DataFrame, genome: Genome, row: pd.Series, results: list[RunResult], sigma) -> list[str]:
    recorded = frame[(frame.genome_id == genome.id) & (frame.kind != "replay") & (frame.status == "ok")].val_bpb
    values = [r.val_bpb for r in results if r.ok and math.isfinite(r.val_bpb)]
    rec_mean = float(recorded.mean()) if len(recorded) else math.nan
    lines = [
        f"recorded  {fmt_bpb(rec_mean)} (mean of {len(recorded)} ok evaluation(s); "
        f"evaluation {row.eval_id}: {fmt_bpb(row.val_bpb)}, seed {row.seed})",
    ]
    if not values:
        return [*lines, "replayed  - (no replay finished ok)"]
    mean = statistics.fmean(values)
    spread = f" ± {statistics.stdev(values):.4f} (std)" if len(values) > 1 else ""
    lines.append(f"replayed  {mean:.4f}{spread} over {len(values)}: " + ", ".join(f"{v:.4f}" for v in values))
    diff = mean - rec_mean
    if sigma:
        lines.append(f"difference {diff:+.4f} = {diff / sigma:+.2f}σ (σ {sigma:.4f}, the run's noise between repeats)")
    else:
        lines.append(f"difference {diff:+.4f} (σ unknown: the run has no repeated evaluations)")
    return lines


def _header(genome: Genome, row: pd.Series, profile: Profile, where: str) -> str:
    tokens = f", {profile.budget_tokens:,} tokens" if profile.budget_tokens else ""
    return (
        f"replaying {genome.short_id} ({genome.operator}: {genome.description})\n"
        f"as recorded in evaluation {row.eval_id}: profile {profile.name} (budget {profile.budget_seconds:g} s"
        f"{tokens}), seed {row.seed}, on {where}"
    )


def _describe(result: RunResult) -> str:
    if not result.ok:
        return f"{result.status}: {result.reason}"
    return f"val_bpb {result.val_bpb:.4f} ({result.num_steps} steps in {result.training_seconds:.1f} s)"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
