"""The single-genome commands: `train` (train and score one train.py) and `prepare` (build caches)."""

from __future__ import annotations

import argparse
import sys

from evolve.cli import UsageError, profile_arg, read_genome
from fitness import data, datasets
from fitness.result import RunResult


def summary_lines(result: RunResult) -> list[str]:
    """The seed project's summary block, plus status and where the non-training time went."""
    phases = ", ".join(f"{name} {seconds:.1f}" for name, seconds in result.phases.items())
    rows = [
        ("val_bpb", f"{result.val_bpb:.6f}"),
        ("test_bpb", f"{result.test_bpb:.6f}"),
        ("training_seconds", f"{result.training_seconds:.1f}"),
        ("total_seconds", f"{result.total_seconds:.1f}"),
        ("peak_vram_mb", f"{result.peak_memory_mb:.1f}"),
        ("num_steps", str(result.num_steps)),
        ("num_params_M", f"{result.num_params / 1e6:.2f}"),
        ("tokens_M", f"{result.tokens / 1e6:.2f}"),
        ("status", result.status),
        ("overhead_seconds", f"{result.overhead_seconds:.1f} ({phases})"),
        ("device", result.device),
        ("profile", f"{result.profile} (budget {result.budget_seconds:.0f} s, seed {result.seed})"),
    ]
    return ["---"] + [f"{key + ':':<18}{value}" for key, value in rows]


def train(args: argparse.Namespace) -> int:
    from trainer import TrainerConfig, run
    from trainer.cgroup import available_cores

    source = read_genome(args.genome)
    profile = profile_arg(args.profile)
    if args.budget is not None:
        profile = profile.with_budget(args.budget)
    device = "cuda" if profile.name == "h100" else "cpu"
    threads = args.threads if args.threads is not None else (available_cores() if device == "cuda" else 1)
    if threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    config = TrainerConfig(threads=threads, device=device)
    _prepare(profile.dataset, profile.vocab_size, (profile.seq_len,), profile.num_shards)
    result = run(source, profile, seed=args.seed, config=config, log_path=args.log)
    if not result.ok and result.log_tail:
        print(result.log_tail, file=sys.stderr)
    print("\n".join(summary_lines(result)))
    if not result.ok:
        print(f"evolve: {result.status}: {result.reason}", file=sys.stderr)
        return 1
    return 0


def prepare(args: argparse.Namespace) -> int:
    profile = profile_arg(args.profile)
    dataset = args.dataset or profile.dataset
    vocab = args.vocab or profile.vocab_size
    shards = args.num_shards if args.num_shards is not None else (profile.num_shards if dataset == "climbmix" else 0)
    if vocab < 257 or vocab > 65536:
        raise UsageError(f"--vocab must be between 257 and 65536, got {vocab}")
    cache = _prepare(dataset, vocab, (profile.seq_len,), shards)
    print(f"prepared {dataset} vocab {vocab} in {cache.root}")
    return 0


def _prepare(dataset: str, vocab: int, seq_lens: tuple[int, ...], shards: int) -> data.TokenCache:
    shown = []

    def progress(stage: str, done: int, total: int) -> None:
        bar = f"[{'#' * (20 * done // total):<20}] {done}/{total}" if total else f"{done} documents"
        print(f"\r{stage}: {bar}", end="", file=sys.stderr, flush=True)
        shown.append(stage)

    try:
        cache = data.prepare(dataset, vocab, seq_lens, shards, progress=progress)
    except datasets.DatasetError as e:
        raise UsageError(str(e)) from None
    if shown:
        print(file=sys.stderr)
    return cache
