"""What the run prints: one line per finished evaluation and one status line under it.

The status line: children done / running / queued, the generation, the best val_bpb with its genome
and its margin over the seed in σ, children per slot-hour (a slot is a GPU, or the cores a CPU child
gets), the share of slot time spent training, and the LLM spend.
"""

from __future__ import annotations

import math
import sys
import time

import ray


class Progress:
    def __init__(self, population, unit: str, stream=None) -> None:
        self.population = population
        self.unit = unit  # "GPU" or "slot"
        self.stream = stream or sys.stdout
        self.started = time.monotonic()

    def say(self, line: str) -> None:
        elapsed = int(time.monotonic() - self.started)
        stamp = f"{elapsed // 3600:02d}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}"
        print(f"[{stamp}] {line}", file=self.stream, flush=True)

    def note(self, line: str) -> None:
        self.say(line)

    def proposal_failed(self, failure) -> None:
        self.say(f"proposal {failure.operator} gave no child ({failure.status}: {failure.reason[:160]})")

    def result(self, task, result, parent_score: float | None, status: dict) -> None:
        what = f"{task.kind} {task.genome_id[:7]}"
        if task.kind == "child":
            what += f" {task.operator}: {task.description[:70]}"
        elif task.kind != "noise":
            what += f" (seed {task.seed})"
        if result.ok:
            change = "" if parent_score is None else f" ({result.val_bpb - parent_score:+.4f} vs parent)"
            outcome = f"val_bpb {result.val_bpb:.4f}{change}"
        else:
            outcome = f"{result.status}: {result.reason[:100]}"
        self.say(f"{what} -> {outcome}")
        self.say(f"    {self.status_line(status)}")

    def status_line(self, status: dict) -> str:
        summary = ray.get(self.population.summary.remote())
        parts = [
            f"children {status['children_done']}/{status['target']} done, {status['running']} running, "
            f"{status['queued']} queued ({status['generation']})",
            best_text(summary),
        ]
        hours = status["elapsed"] / 3600
        if hours > 0 and status["slots"]:
            rate = status["session_children"] / (status["slots"] * hours)
            busy = status["busy"] / (status["slots"] * status["elapsed"])
            parts.append(f"{rate:.1f} children/{self.unit}-hour, {self.unit}s busy {100 * busy:.0f}%")
        cost = status["llm_cost"]
        parts.append("LLM cost unknown (no price)" if math.isnan(cost) else f"LLM ${cost:.2f}")
        return " | ".join(parts)


def best_text(summary: dict) -> str:
    """'best 2.7012 (1a2b3c4, -3.1σ vs seed 2.7300)', from Population.summary()."""
    best, seed, sigma = summary["best_val_bpb"], summary["seed_val_bpb"], summary["sigma"]
    if best is None:
        return "best: none yet"
    text = f"best {best:.4f} ({summary['best_id'][:7]}"
    if seed is not None and summary["best_id"] != summary["seed_id"]:
        margin = f"{(best - seed) / sigma:+.1f}σ" if sigma else f"{best - seed:+.4f}"
        text += f", {margin} vs seed {seed:.4f}"
    return text + ")"
