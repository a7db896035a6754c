"""Research notes for the LLM prompts, rebuilt from the archive: noise, budget, ledger and inspirations.

Pure functions of an archive frame (one row per evaluation, as `population.archive()` returns it), the
run's sigma and a random generator, so a resumed run's first prompt knows what the last session did.
A delta is read against the noise: sigma_diff = sigma * sqrt(1/n + 1/n_parent); beyond 2 sigma_diff it
is "better" or "worse" ("confirmed" once the genome has more than one ok run), inside it "within noise".
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

LEDGER_GENOMES = 40  # most recent genomes in the ledger
BEST_INSPIRATIONS = 2  # best confirmed genomes shown as diffs
DIVERSE_INSPIRATIONS = 1  # and this many others, drawn at random from the rest of the ok genomes
Z_MEANINGFUL = 2.0


@dataclass(frozen=True)
class Standing:
    """One genome as the archive knows it: its ok runs' mean and count, or its failure."""

    genome_id: str
    parent_id: str  # the first parent ("" for the seed)
    operator: str
    description: str
    mean: float  # nan when no ok run
    n: int
    status: str  # the first evaluation's status
    reason: str
    last: dict  # the last evaluation's row


def standings(frame) -> dict[str, Standing]:
    """Per genome, in order of first evaluation; noise rows count towards the seed's fitness."""
    result: dict[str, Standing] = {}
    if not len(frame):
        return result
    for genome_id, rows in frame.sort_values("eval_id").groupby("genome_id", sort=False):
        ok = rows[(rows.status == "ok") & rows.val_bpb.notna()]
        first, last = rows.iloc[0], rows.iloc[-1]
        mean = float(ok.val_bpb.mean()) if len(ok) else math.nan
        parent = first.parents.split(",")[0] if first.parents else ""
        row = (ok.iloc[-1] if len(ok) else last).to_dict()
        result[genome_id] = Standing(
            genome_id, parent, first.operator, first.description, mean, len(ok), first.status, first.reason, row
        )
    return result


def noise_text(sigma: float | None, seed_runs: int) -> str:
    if sigma is None:
        return "Not measured yet: treat every difference in val_bpb as possibly chance."
    return (
        f"sigma = {sigma:.4f} val_bpb: one run of the same script moves by about this much by chance "
        f"(measured from {seed_runs} runs of the seed). Scores are mean ± sigma/sqrt(n) over n runs; a "
        f"difference between two single runs means something only beyond about {2.8 * sigma:.4f} (2 sigma "
        "of the difference). A change inside the noise is not a result, good or bad."
    )


def metrics_text(standing: Standing, sigma: float | None) -> str:
    if standing.n == 0:
        return f"{standing.status}: {standing.reason[:200]}"
    row = standing.last
    spread = f" ± {sigma / math.sqrt(standing.n):.4f}" if sigma else ""
    size = f"{row['num_steps']} steps, {row['num_params'] / 1e6:.2f}M params"
    return f"val_bpb {standing.mean:.4f}{spread} (n={standing.n}), {size}"


def budget_text(budget_seconds: float, machine: str, standing: Standing | None) -> str:
    text = f"Each child trains for {budget_seconds:g} s on {machine}."
    if standing is None or standing.n == 0:
        return text
    row = standing.last
    seconds = row["training_seconds"]
    rate = f", {row['tokens'] / seconds:,.0f} tokens/s" if seconds and row["tokens"] else ""
    memory = f", peak memory {row['peak_memory_mb']:,.0f} MB" if row["peak_memory_mb"] else ""
    return f"{text} The parent trained {seconds:.1f} s: {row['num_steps']} steps{rate}{memory}."


def ledger_text(table: dict[str, Standing], sigma: float | None, seed_id: str) -> str:
    """What was tried, by which operator, its delta against its parent and whether it means anything."""
    lines = [_ledger_line(s, table.get(s.parent_id), sigma) for s in table.values() if s.genome_id != seed_id]
    lines = lines[-LEDGER_GENOMES:]
    return "\n".join(lines)


def _ledger_line(s: Standing, parent: Standing | None, sigma: float | None) -> str:
    head = f"- {s.genome_id[:7]} {s.operator}: {s.description}"
    if s.n == 0:
        return f"{head} -> FAILED ({s.status}: {' '.join(s.reason.split())[:120]})"
    score = f"{s.mean:.4f} (n={s.n})"
    if parent is None or parent.n == 0:
        return f"{head} -> {score}"
    delta = s.mean - parent.mean
    return f"{head} -> {score}, {delta:+.4f} vs its parent {parent.genome_id[:7]}: {_verdict(delta, s, parent, sigma)}"


def _verdict(delta: float, s: Standing, parent: Standing, sigma: float | None) -> str:
    if not sigma:
        return "noise not measured yet"
    z = delta / (sigma * math.sqrt(1 / s.n + 1 / parent.n))
    if abs(z) < Z_MEANINGFUL:
        return f"within noise ({z:+.1f} sigma)"
    word = "better" if z < 0 else "worse"
    return f"{word} ({z:+.1f} sigma, {'confirmed' if s.n > 1 else 'one run, unconfirmed'})"


def pick_inspirations(table: dict[str, Standing], exclude: set[str], rng: random.Random) -> list[Standing]:
    """The best confirmed genomes (more than one ok run), then diverse ones drawn from the other ok genomes."""
    ok = [s for s in table.values() if s.n > 0 and s.genome_id not in exclude]
    best = sorted((s for s in ok if s.n > 1), key=lambda s: s.mean)[:BEST_INSPIRATIONS]
    rest = [s for s in ok if s not in best]
    return best + rng.sample(rest, min(DIVERSE_INSPIRATIONS, len(rest)))
