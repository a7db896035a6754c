"""`python -m evolve show GENOME [--diff [OTHER]]`, `status` and `runs`: looking into runs.

Both read the run directory read-only, so they work while the run is going. `show` prints a genome's
train.py, or its unified diff from its parents (or from OTHER); `status` prints one screen: what the
run is, how far it got, the best genome against the seed, the last evaluation and the top genomes;
`runs` lists the runs under runs/, one line each.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from datetime import datetime, timezone

from evolve.cli import UsageError
from evolve.report import summarize, summary_text
from evolve.runview import (
    best_text,
    fmt_bpb,
    genome_stats,
    log_path,
    one_line,
    open_run,
    resolve,
    run_dir_arg,
    run_dirs,
    run_record,
)
from population.lineage import unified_diff
from population.rundir import is_live

TOP = 8
NO_LOG = "(no log kept: it trained on another node, failed before training, or ran before logs were kept)\n"


def show(args: argparse.Namespace) -> int:
    run_dir = run_dir_arg(args.run_dir)
    with open_run(run_dir) as pop:
        genome = resolve(pop, args.genome)
        if args.log:
            return show_logs(run_dir, genome, pop.archive())
        if args.diff is None:
            text = genome.source
        elif args.diff == "" and not genome.parents:
            print(f"evolve: {genome.short_id} is the seed genome: it has no parents to diff against", file=sys.stderr)
            return 0
        elif args.diff == "":
            text = "".join(unified_diff(pop.genome(p), genome) for p in genome.parents)
        else:
            text = unified_diff(resolve(pop, args.diff), genome)
    sys.stdout.write(text)
    if not text:
        print(f"evolve: no difference in train.py for {genome.short_id}", file=sys.stderr)
    return 0


def show_logs(run_dir, genome, frame) -> int:
    """Each evaluation's train.log, in recording order, under a header line naming the evaluation."""
    rows = frame[frame.genome_id == genome.id]
    if not len(rows):
        raise UsageError(f"genome {genome.short_id} has no evaluation yet, so no log")
    for row in rows.itertuples():
        path = log_path(run_dir, genome.source, int(row.seed), row.started)
        print(f"=== {genome.short_id} {row.kind} seed {row.seed}: {row.status} ({path}) ===", flush=True)
        sys.stdout.write(path.read_text(errors="replace") if path.is_file() else NO_LOG)
    return 0


def status(args: argparse.Namespace) -> int:
    run_dir = run_dir_arg(args.run_dir)
    record = run_record(run_dir)
    with open_run(run_dir) as pop:
        frame = pop.archive()
        stats = genome_stats(frame)
        summary = summarize(pop, frame, stats)
        waiting = len(pop.unevaluated())
        survivors = len(pop.survivors())
    lines = [f"run       {run_dir}  ({'running' if is_live(run_dir) else 'not running'})", _setup(record)]
    lines.append(f"queue     {waiting} genome(s) committed but not yet evaluated · {survivors} survivors")
    if len(frame):
        last = frame.iloc[-1]
        what = f"{last.genome_id[:7]} {last.kind} {last.status}" + (f": {one_line(last.reason)}" if last.reason else "")
        lines.append(f"last      {_ago(last.finished or last.started)}  {what}"[:160])
    lines += ["", summary_text(summary), "", "top genomes (mean val_bpb over ok evaluations)"]
    ranked = sorted((g for g in stats if math.isfinite(stats[g].val_bpb)), key=lambda g: stats[g].val_bpb)
    first = frame.drop_duplicates("genome_id").set_index("genome_id")
    for gid in ranked[:TOP]:
        s, row = stats[gid], first.loc[gid]
        lines.append(f"  {gid[:7]}  {row.operator:<10}  {fmt_bpb(s.val_bpb)} (n={s.count})  {row.description}"[:160])
    print("\n".join(lines))
    return 0


def _setup(record: dict) -> str:
    if not record:
        return "setup     (no run.json: made without the orchestrator)"
    profile = record.get("profile") or {}
    population = record.get("population") or {}
    return (
        f"setup     created {record.get('created', '?')} · profile {profile.get('name', '?')} "
        f"(budget {profile.get('budget_seconds', '?')} s{_tokens(profile)}) · mutators {record.get('mutators', '?')} "
        f"· population {population.get('population_size', '?')}"
    )


def _tokens(profile: dict) -> str:
    return f", {profile['budget_tokens']:,} tokens" if profile.get("budget_tokens") else ""


def _ago(stamp: str) -> str:
    try:
        then = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return stamp or "?"
    then = then if then.tzinfo else then.replace(tzinfo=timezone.utc)
    minutes = (datetime.now(timezone.utc) - then).total_seconds() / 60
    return f"{stamp} ({minutes:.0f} min ago)" if minutes < 120 else f"{stamp} ({minutes / 60:.1f} h ago)"


def runs(args: argparse.Namespace) -> int:
    found = run_dirs(args.root)
    if not found:
        print(f"no runs under {args.root}/ (a run started here puts its directory there)")
        return 0
    print(f"{'run':<34} {'state':<11} {'profile':<8} {'children':>10} {'size':>9}  best")
    for run_dir in found:
        print(run_line(run_dir))
    return 0


def run_line(run_dir) -> str:
    """One run: its state, profile, children done (of the target), size on disk and best vs the seed."""
    record = run_record(run_dir)
    state = "running" if is_live(run_dir) else "stopped"
    try:
        with open_run(run_dir) as pop:
            summary = pop.summary()
    except UsageError as e:
        return f"{str(run_dir):<34} {state:<11} damaged: {e}"[:160]
    target = _target(record)
    children = f"{summary.children}" + (f"/{target}" if target else "")
    profile = (record.get("profile") or {}).get("name", "?")
    size = f"{_size_bytes(run_dir) / 2**20:.1f} MB"
    return f"{str(run_dir):<34} {state:<11} {profile:<8} {children:>10} {size:>9}  {best_text(summary)}"


def _target(record: dict) -> int | None:
    generations, population = record.get("generations"), (record.get("population") or {}).get("population_size")
    return generations * population if isinstance(generations, int) and isinstance(population, int) else None


def _size_bytes(run_dir) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(run_dir) for f in files)
