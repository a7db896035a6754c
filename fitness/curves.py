"""Loss curves: what a child's own training loss did over its budget, and the rule that stops a doomed child.

A curve is a tuple of (progress, loss) points, progress the fraction of the training budget used on the
harness's clock (fitness.harness.progress) when the genome reported that loss, at most POINTS of them (the
harness sends the mean of each 1/POINTS of the budget). The loss is the genome's own report: it may stop a
child early (PruneRule), never score one. Everything here is pure; the trainer reads the points off a pipe
(`Reader`, in trainer.supervise) and asks the rule after each one; the harness writes them (`Writer`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

POINTS = 200  # points a curve keeps at most (the harness's bins of the budget)
MAX_LINE = 64  # bytes: a longer line on the curve pipe is not the harness's, and is dropped

Curve = tuple[tuple[float, float], ...]


def loss_at(curve: Curve, progress: float) -> float | None:
    """The curve's loss at `progress`, linearly between its points; None outside the points it has."""
    if not curve or progress < curve[0][0] or progress > curve[-1][0]:
        return None
    for (p0, l0), (p1, l1) in zip(curve, curve[1:], strict=False):
        if p0 <= progress <= p1:
            return l0 if p1 == p0 else l0 + (l1 - l0) * (progress - p0) / (p1 - p0)
    return curve[-1][1]


def mean_loss(curve: Curve, start: float, end: float) -> float | None:
    """The mean loss of the curve's points with progress in [start, end]; None without any there."""
    values = [loss for p, loss in curve if start <= p <= end]
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class PruneRule:
    """Stop a child whose loss trails its parent's by `margin` (nats) over the same stretch of the budget.
    Judged once, when the child's curve first reaches `at` (a fraction of the budget): the child's and the
    parent's mean loss over [at - window, at] are compared, so a single noisy batch decides nothing."""

    parent: Curve
    at: float = 0.5
    margin: float = 0.05
    window: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.window <= self.at < 1.0:
            raise ValueError(f"prune point must be in (window, 1), got at={self.at!r} window={self.window!r}")
        if not self.margin >= 0:
            raise ValueError(f"prune margin must be >= 0, got {self.margin!r}")

    def verdict(self, child: Curve) -> str:
        """Why the child is pruned, or "" (go on). Only once the child has passed `at`; "" when the parent's
        curve does not cover the window (nothing to compare with)."""
        if not child or child[-1][0] < self.at:
            return ""
        start = self.at - self.window
        mine, theirs = mean_loss(child, start, self.at), mean_loss(self.parent, start, self.at)
        if mine is None or theirs is None or mine - theirs < self.margin:
            return ""
        return (
            f"pruned at {self.at:.0%} of its budget: its training loss {mine:.3f} trails its parent's "
            f"{theirs:.3f} by more than {self.margin:.3f}"
        )

    def to_dict(self) -> dict:
        return dict(parent=[list(p) for p in self.parent], at=self.at, margin=self.margin, window=self.window)

    @classmethod
    def from_dict(cls, d: dict) -> PruneRule:
        return cls(tuple((float(p), float(v)) for p, v in d["parent"]), d["at"], d["margin"], d["window"])


class Reader:
    """Points from the harness's curve pipe, as bytes arrive: whole lines of "progress loss", finite,
    progress in [0, 1] and never going back; anything else (a genome can write to the pipe too) is dropped.
    At most POINTS are kept."""

    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []
        self._partial = b""

    def feed(self, data: bytes) -> int:
        """Take a chunk of the pipe; returns how many points it added."""
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()[:MAX_LINE]
        before = len(self.points)
        for line in lines:
            point = _parse(line) if len(line) <= MAX_LINE else None
            if point and len(self.points) < POINTS and (not self.points or point[0] >= self.points[-1][0]):
                self.points.append(point)
        return len(self.points) - before

    def curve(self) -> Curve:
        return tuple(self.points)


def _parse(line: bytes) -> tuple[float, float] | None:
    parts = line.split()
    if len(parts) != 2:
        return None
    try:
        progress, loss = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    if not (math.isfinite(progress) and math.isfinite(loss) and 0.0 <= progress <= 1.0):
        return None
    return progress, loss


class Writer:
    """The harness's side: each loss goes into the bin of the budget it was reported in (1/POINTS wide);
    when a bin is left, its mean progress and mean loss go down the pipe `fd` as one line. At most POINTS
    lines of under MAX_LINE bytes: they fit a pipe's buffer, so a write never waits for the reader."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self.bin, self.sum_p, self.sum_loss, self.count = -1, 0.0, 0.0, 0

    def add(self, progress: float, loss: float) -> None:
        index = min(POINTS - 1, int(progress * POINTS))
        if index != self.bin:
            self.flush()
            self.bin = index
        self.sum_p, self.sum_loss, self.count = self.sum_p + progress, self.sum_loss + loss, self.count + 1

    def flush(self) -> None:
        """Send the open bin's point (at the end of training, or when the next bin starts)."""
        if self.count and self.fd is not None:
            line = f"{self.sum_p / self.count:.5f} {self.sum_loss / self.count:.6g}\n".encode()
            _write(self.fd, line)
        self.sum_p, self.sum_loss, self.count = 0.0, 0.0, 0


def _write(fd: int, data: bytes) -> None:
    try:
        os.write(fd, data)
    except OSError:  # the trainer is gone, or closed its end: the curve is lost, training goes on
        pass
