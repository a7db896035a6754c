"""`python -m evolve report --run-dir D`: progress.png, lineage.png, curves.png, a summary table and report.html.

Everything is read from the run directory (read-only), so a report of a live run is a snapshot of it.
The summary counts children (finished child evaluations), failures by status, the best genome against
the seed in val_bpb and in noise sigmas (at the confirmation seeds once the best is confirmed), the
confirmed best's test_bpb, device hours and LLM spend.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evolve.runview import GenomeStats, fmt_bpb, fmt_delta, genome_stats, one_line, open_run, resolve, run_dir_arg
from population import Population


@dataclass(frozen=True)
class Summary:
    rows: tuple[tuple[str, str], ...]  # (what, value) for people, in display order
    best_id: str
    seed_id: str


def summarize(pop: Population, frame: pd.DataFrame, stats: dict[str, GenomeStats]) -> Summary:
    seed = pop.seed().id
    best = (pop.best() or pop.seed()).id
    sigma = pop.noise_sigma()
    children = frame[(frame.kind == "child") & (frame.status != "interrupted")]
    failed = children[~children.status.isin(("ok", "pruned"))].status.value_counts()  # pruned: stopped, not failed
    pruned = int((children.status == "pruned").sum())
    scores = pop.summary()  # the population's scores: the confirmation means once the best is confirmed
    known = scores.best_val_bpb is not None and scores.seed_val_bpb is not None
    gap = scores.best_val_bpb - scores.seed_val_bpb if known else math.nan
    confirmed = frame[(frame.genome_id == best) & (frame.kind == "confirm") & (frame.status == "ok")]
    on_gpu = ~frame.device.str.startswith("cpu") & (frame.device != "")
    rows = [
        ("genomes", f"{len(stats)} evaluated ({scores.genomes} committed)"),
        ("evaluations", _by_kind(frame)),
        ("children", str(len(children))),
        ("pruned children", _rate(pruned, len(children)) + " (loss curve trailed the parent's: stopped early)"),
        ("failed children", _rate(int(failed.sum()), len(children))),
        *((f"  {status}", _rate(int(n), len(children)) + _commonest(children, status)) for status, n in failed.items()),
        ("seed val_bpb", _mean(stats.get(seed))),
        (
            "best val_bpb",
            f"{fmt_bpb(scores.best_val_bpb)}  ({best[:7]}, {pop.genome(best).operator}, "
            f"{'confirmed at fresh seeds' if scores.best_confirmed else 'unconfirmed'})",
        ),  # fmt: skip
        ("best vs seed", fmt_delta(gap, sigma)),
        ("noise σ", "unknown (fewer than two repeats)" if sigma is None else f"{sigma:.4f}"),
        ("best test_bpb", fmt_bpb(confirmed.test_bpb.mean()) if len(confirmed) else "- (not confirmed)"),
        ("GPU-hours", f"{frame.total_seconds[on_gpu].sum() / 3600:.3f}"),
        ("CPU child-hours", f"{frame.total_seconds[~on_gpu].sum() / 3600:.3f}"),
        ("LLM tokens", f"{int(frame.llm_input_tokens.sum()):,} in, {int(frame.llm_output_tokens.sum()):,} out"),
        ("LLM cost", cost_text(frame)),
        *_llm_by_operator(frame),
    ]
    return Summary(tuple(rows), best, seed)


def _llm_by_operator(frame) -> list[tuple[str, str]]:
    """LLM spend by the operator that made the child (an offline stand-in carries its failed LLM try), and
    what the evaluations it was billed to came to."""
    rows = []
    for operator, part in frame[frame.llm_input_tokens > 0].groupby("operator"):
        outcomes = ", ".join(f"{n} {status}" for status, n in part.status.value_counts().items())
        rows.append((f"  {operator}", f"{cost_text(part)} on {len(part)} evaluations ({outcomes})"))
    return rows


def cost_text(frame: pd.DataFrame) -> str:
    """The LLM spend of these rows: tokens of a model with no known price are recorded at $0, so they are
    shown as unknown rather than free."""
    unpriced = frame[(frame.llm_input_tokens > 0) & (frame.llm_cost_usd == 0)]
    priced = f"${frame.llm_cost_usd.sum():.2f}"
    if unpriced.empty:
        return priced
    models = ", ".join(sorted(set(unpriced.llm_model) - {""})) or "its model"
    unknown = f"unknown for {len(unpriced)} evaluations (no price for {models}; see --price)"
    return f"{priced} + {unknown}" if frame.llm_cost_usd.sum() > 0 else unknown


def summary_text(summary: Summary) -> str:
    width = max(len(what) for what, _ in summary.rows)
    return "\n".join(f"{what:<{width}}  {value}" for what, value in summary.rows)


def main(args: argparse.Namespace) -> int:
    run_dir = run_dir_arg(args.run_dir)
    out = Path(args.out) if args.out else run_dir / "report"
    with open_run(run_dir) as pop:  # bad input fails here, before the plotting libraries load
        lineage_id = resolve(pop, args.lineage).id
        frame = pop.archive()
        stats = genome_stats(frame)
        summary = summarize(pop, frame, stats)
        page = _draw(pop, frame, stats, summary, lineage_id, out)
    (out / "report.html").write_text(page)
    (out / "summary.txt").write_text(summary_text(summary) + "\n")
    print(summary_text(summary))
    images = ", ".join(str(out / f"{name}.png") for name in ("progress", "lineage", "curves"))
    print(f"wrote {images}, {out / 'summary.txt'}, {out / 'report.html'}")
    return 0


def _draw(pop: Population, frame: pd.DataFrame, stats, summary: Summary, lineage_id: str, out: Path) -> str:
    """progress.png and lineage.png into `out`; returns the HTML page that embeds them."""
    from evolve import figures
    from evolve.lineage import lineage_view
    from evolve.report_html import render

    view = lineage_view(pop, lineage_id, stats)
    paths = {name: out / f"{name}.png" for name in ("progress", "lineage", "curves")}
    figures.save(figures.progress_figure(figures.progress(frame, summary.seed_id, pop.config)), paths["progress"])
    figures.save(figures.lineage_figure(view), paths["lineage"])
    parents = pop.genome(lineage_id).parents
    figures.save(figures.curves_figure(figures.curves(frame, lineage_id, parents)), paths["curves"])
    return render(pop, frame, stats, summary, view, paths)


def _by_kind(frame: pd.DataFrame) -> str:
    counts = frame.kind.value_counts()
    return f"{len(frame)}" + (" (" + ", ".join(f"{k} {n}" for k, n in counts.items()) + ")" if len(frame) else "")


def _commonest(children: pd.DataFrame, status: str) -> str:
    """The most frequent reason among children that ended with `status`, as an example of the cause."""
    reasons = children[children.status == status].reason.map(one_line)
    reasons = reasons[reasons != ""]
    return f"  e.g. {reasons.value_counts().index[0][:80]}" if len(reasons) else ""


def _rate(n: int, total: int) -> str:
    return f"{n} ({n / total:.0%})" if total else str(n)


def _mean(stats: GenomeStats | None) -> str:
    if stats is None or stats.count == 0:
        return "-"
    spread = f" ± {stats.std:.4f}" if math.isfinite(stats.std) else ""
    return f"{stats.val_bpb:.4f}{spread} (n={stats.count})"
