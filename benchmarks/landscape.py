"""Landscapes for the search simulator: `evaluate(genome, training_seed) -> Evaluation`.

A genome here is its knobs: a mapping from knob name ("MATRIX_LR", "DEPTH[cpu]") to value, as
mutators.offline.find_knobs reads them from train.py. Any object with `seed_genome()` (the start) and
`evaluate(genome, training_seed) -> (val_bpb or None, cost_seconds, loss_curve)` plugs into
benchmarks.simrun.run_strategy; `mean(genome)` (the noise-free score) is optional.

SurrogateLandscape, the default, is the model of benchmarks.landscape_fit fitted to real evaluations,
moved to the regime users run: a time budget per child (the cpu profile's 10 s), not the token budget
the data was measured under. Under a time budget a genome that takes k times the seed's seconds per
token trains 1/k of the tokens and steps, which costs kappa * log2(k) val_bpb; kappa is the fitted
penalty for halving the steps (the GRAD_ACCUM_STEPS doubling in the data), so size is no longer free.
What the data cannot say is an assumption, stated here:
- beyond the range of a knob the data saw, its effect (on the score and on the steps a time budget
  buys) stops improving and grows worse quadratically (WALL per unit of log2 distance squared);
- failure regions (the data has no failed evaluation): a learning rate above 8x the seed's diverges
  (crash), and a genome so slow that it gets under 1/16 of the seed's steps fails its budget (timeout);
- the loss curve a child reports (nats of training loss over the fraction of its budget, 20 points): at
  progress p, slope(p) * val_bpb + sd(p) / sqrt(2) * z + kappa * log2(1 / p), z ~ N(0, 1) per genome and
  training seed; slope(p) and sd(p) are benchmarks.curves' least-squares fit of a child's lead over its
  parent (window means) on their final val_bpb gap, measured on real runs (results/curves.json), so a
  partial curve predicts the final rank as well as real ones do, no better (the first model, val_bpb plus
  the same shape for every genome, made a curve at 10% rank children perfectly);
- landscape seeds: each refits the model on a bootstrap resample of the evaluations and adds four random
  knob-pair interactions of the fit's residual size, so 20 seeds are 20 plausible landscapes, not one.
Noise: val_bpb = mean + offset(training seed) + e(genome, seed), both normal with the fitted sds.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import NamedTuple

import numpy as np

from benchmarks import landscape_data, landscape_fit
from benchmarks.landscape_fit import Fit

OVERHEAD_JSON = Path(__file__).resolve().parent / "results" / "overhead.json"
CURVES_JSON = Path(__file__).resolve().parent / "results" / "curves.json"
CURVE_POINTS = tuple(i / 20 for i in range(1, 21))
BUDGET_SECONDS = 10.0  # the cpu profile's budget per child
WALL = 0.05  # val_bpb per squared log2 unit beyond the data's range of a knob
LR_KNOBS = ("MATRIX_LR", "EMBED_LR", "UNEMBED_LR")
EXTRA_PAIRS = 4


class Evaluation(NamedTuple):
    val_bpb: float | None  # None: the child failed (crashed, diverged, ran out of time)
    cost_seconds: float  # slot time: training budget plus start-up and scoring
    loss_curve: tuple[tuple[float, float], ...]  # (progress 0..1, training loss)


def overhead_seconds(path: Path = OVERHEAD_JSON) -> tuple[float, float]:
    """(fixed, scoring) seconds per child beside training, from the overhead benchmark's warm runs."""
    runs = [r for r in json.loads(path.read_text())["runs"] if r["mode"] == "warm"]
    scoring = float(np.mean([r["phases"]["score_eval"] + r["phases"]["score_probe"] for r in runs]))
    return float(np.mean([r["overhead_s"] for r in runs])) - scoring, scoring


class CurveModel(NamedTuple):
    """d(p) = slope(p) * D + residual (sd), by benchmarks.curves, at the measured points of progress."""

    progress: tuple[float, ...]
    slope: tuple[float, ...]
    sd: tuple[float, ...]

    @classmethod
    def load(cls, path: Path = CURVES_JSON) -> CurveModel:
        rows = [r for r in json.loads(path.read_text())["by_progress"] if r["slope"] is not None]
        return cls(*(tuple(float(r[k]) for r in rows) for k in ("at", "slope", "residual_sd")))

    def curve(self, val: float, kappa: float, z: float) -> tuple[tuple[float, float], ...]:
        slope, sd = np.interp(CURVE_POINTS, self.progress, self.slope), np.interp(CURVE_POINTS, self.progress, self.sd)
        return tuple(
            (p, float(b * val + s / math.sqrt(2) * z + kappa * math.log2(1 / p)))
            for p, b, s in zip(CURVE_POINTS, slope, sd, strict=True)
        )


class SurrogateLandscape:
    def __init__(self, fit: Fit, seed: int, overhead: tuple[float, float]) -> None:
        self.fit, self.seed = fit, seed
        self.fixed_s, self.scoring_s = overhead
        rng = np.random.default_rng(seed)
        names = fit.features.names
        self.pairs = [tuple(rng.choice(len(names), 2, replace=False)) for _ in range(EXTRA_PAIRS)]
        self.pair_coef = rng.normal(0.0, fit.residual_sd, EXTRA_PAIRS)
        steps = fit.features.index["GRAD_ACCUM_STEPS[cpu]"]  # x = 1: half the steps; linear + square terms
        self.kappa = max(0.05, float(fit.score_coef[steps] + fit.score_coef[steps + len(names)]))
        self.seed_seconds = fit.seconds(np.zeros(len(names)))
        self._offsets: dict[int, float] = {}
        self.curves = CurveModel.load()

    @classmethod
    def fitted(cls, seed: int, observations: list | None = None, lam: float | None = None) -> SurrogateLandscape:
        """Landscape `seed`: the model refitted on a bootstrap resample (seed 0: on all the data)."""
        observations = observations if observations is not None else landscape_data.load()
        lam = lam if lam is not None else landscape_fit.best_lambda(observations)[0]
        if seed:
            rng = random.Random(seed)
            observations = [rng.choice(observations) for _ in observations]
        return cls(landscape_fit.fit(observations, lam), seed, overhead_seconds())

    def seed_genome(self) -> dict[str, float]:
        return dict(self.fit.features.seed)

    def mean(self, genome: dict[str, float]) -> float:
        """The noise-free val_bpb under the time budget (what a perfect confirmation would measure)."""
        return self._mean(self.fit.features.positions(genome))

    def evaluate(self, genome: dict[str, float], training_seed: int) -> Evaluation:
        x = self.fit.features.positions(genome)
        ratio = self.fit.seconds(x) / self.seed_seconds  # seconds per token, over the seed's
        cost = BUDGET_SECONDS + self.fixed_s + self.scoring_s * ratio
        if self._fails(genome, ratio):
            return Evaluation(None, cost, ())
        key = repr((self.seed, sorted(genome.items()), training_seed))  # a str seed: stable across processes
        noise = random.Random(key).gauss(0.0, self.fit.noise_sd)
        val = self._mean(x) + self._offset(training_seed) + noise
        curve = self.curves.curve(val, self.kappa, random.Random(key + "curve").gauss(0.0, 1.0))
        return Evaluation(val, cost, curve)

    def pruned_cost(self, genome: dict[str, float], at: float) -> float:
        """Slot time of a child stopped at `at` of its budget: start-up and that much training, no scoring."""
        return BUDGET_SECONDS * at + self.fixed_s

    def _mean(self, x: np.ndarray) -> float:
        f = self.fit
        inside = np.clip(x, f.low, f.high)
        wall = WALL * float(np.sum((x - inside) ** 2))
        extra = sum(c * inside[a] * inside[b] for (a, b), c in zip(self.pairs, self.pair_coef, strict=True))
        ratio = f.seconds(inside) / self.seed_seconds  # no speed-up from outside the data's range either
        return f.mean(inside) + wall + extra + self.kappa * math.log2(ratio)

    def _fails(self, genome: dict[str, float], ratio: float) -> bool:
        """A learning rate over 8x the seed's diverges; under 1/16 of the seed's steps misses the budget."""
        seed = self.fit.features.seed
        return ratio > 16 or any(genome[k] > 8 * seed[k] for k in LR_KNOBS if seed.get(k))

    def _offset(self, training_seed: int) -> float:
        if training_seed not in self._offsets:
            rng = random.Random(f"offset {self.seed} {training_seed}")
            self._offsets[training_seed] = rng.gauss(0.0, self.fit.offset_sd)
        return self._offsets[training_seed]
