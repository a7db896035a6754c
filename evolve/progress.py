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

from evolve.runview import best_text
from fitness.profile import Profile

__all__ = ["Progress", "best_text", "duration", "eta_seconds", "noise_note"]
NOISE_FACTOR = 5.0  # a measured σ this many times the profile's expected one is worth a warning


class Progress:
    def __init__(self, population, unit: str, stream=None, profile: Profile | None = None) -> None:
        self.population = population
        self.unit = unit  # "GPU" or "slot"
        self.stream = stream or sys.stdout
        self.began = time.monotonic()
        self.profile = profile
        self.noise_told = False  # the run's σ is far above its profile's: said once

    def say(self, line: str) -> None:
        elapsed = int(time.monotonic() - self.began)
        stamp = f"{elapsed // 3600:02d}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}"
        print(f"[{stamp}] {line}", file=self.stream, flush=True)

    def note(self, line: str) -> None:
        self.say(line)

    def proposal_failed(self, failure) -> None:
        self.say(f"proposal {failure.operator} gave no child ({failure.status}: {failure.reason[:160]})")

    def started(self, task, status: dict) -> None:
        """An evaluation went to a worker: what it is, then the status line (counts are right at this moment)."""
        why = {
            "noise": ": measuring the noise level",
            "repeat": ": confirming a would-be best",
            "confirm": ": confirming the top at a fresh seed",
        }.get(task.kind, "")
        self.say(f"training {_what(task)}{why}")
        self.say(f"    {self.status_line(status)}")

    def result(self, task, result, parent_score: float | None, status: dict) -> None:
        """A finished evaluation, one line (the status line follows when the freed worker starts the next)."""
        what = _what(task)
        if result.ok:
            change = "" if parent_score is None else f" ({result.val_bpb - parent_score:+.4f} vs parent)"
            outcome = f"val_bpb {result.val_bpb:.4f}{change}"
        else:
            outcome = f"{result.status}: {result.reason[:100]}"
        self.say(f"{what} -> {outcome}")

    def status_line(self, status: dict) -> str:
        summary = ray.get(self.population.summary.remote())
        self._tell_noise(summary.sigma)
        parts = [
            f"children {status['children_done']}/{status['target']} done, {status['running']} running, "
            f"{status['queued']} queued ({status['generation']})",
            best_text(summary),
        ]
        hours = status["elapsed"] / 3600
        if hours > 0 and status["slots"] and status["evaluations"]:
            rate = status["session_children"] / (status["slots"] * hours)
            busy = status["busy"] / (status["slots"] * status["elapsed"])
            parts.append(f"{rate:.1f} children/{self.unit}-hour, {self.unit}s busy {100 * busy:.0f}%")
        cost = status["llm_cost"]
        parts.append("LLM cost unknown (no price)" if math.isnan(cost) else f"LLM ${cost:.2f}")
        eta = eta_seconds(status)
        if eta is not None:
            left = duration(eta)
            parts.append(f"{left} left" if left == "under a minute" else f"about {left} left")
        return " | ".join(parts)

    def _tell_noise(self, sigma: float | None) -> None:
        note = noise_note(sigma, self.profile, self.unit) if self.profile and not self.noise_told else ""
        if note:
            self.noise_told = True
            self.say(note)


def noise_note(sigma: float | None, profile: Profile, unit: str) -> str:
    """One line when a run's measured σ is far above what its profile expects, with the likely cause; else ""."""
    expected = profile.noise_sigma
    if not sigma or not expected or sigma < NOISE_FACTOR * expected:
        return ""
    if unit == "GPU":
        cause = "GPUs shared with other work, throttled, or kernels that are not deterministic"
    else:
        cause = (
            "other work on this machine taking the children's cores (budgets count CPU time, but a thread "
            "that loses its core stalls the others), or more threads per child than the cores it has"
        )
    ratio = f"{sigma / expected:.0f}x what the {profile.name} profile expects ({expected})"
    return f"noise σ {sigma:.4f} is {ratio}: likely {cause}"


def _what(task) -> str:
    what = f"{task.kind} {task.genome_id[:7]}"
    if task.kind == "child":
        return what + f" {task.operator}: {task.description[:70]}"
    return what + f" (seed {task.seed})"


def eta_seconds(status: dict) -> float | None:
    """Children still to finish x this session's mean seconds per evaluation / slots; None before any finished."""
    if not status["evaluations"] or not status["slots"]:
        return None
    # busy counts the time of evaluations in flight so far: each is about half done, on average
    per_evaluation = status["busy"] / (status["evaluations"] + status["running"] / 2)
    return max(0, status["target"] - status["children_done"]) * per_evaluation / status["slots"]


def duration(seconds: float) -> str:
    """'under a minute', '45 min', '3.2 h'."""
    if seconds < 60:
        return "under a minute"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
