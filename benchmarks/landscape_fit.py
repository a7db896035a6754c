"""The surrogate landscape's statistical model, fitted to real evaluations (benchmarks.landscape_data).

- Score under the token budget the data was measured at: ridge regression of seed-0 val_bpb on knob
  features: per knob x and x^2 (an optimum per knob), plus products for pairs that physically interact
  (width x depth, learning rate x width, depth, batch and warmdown, head width x width). x is log2 of the
  value over the seed's (of 1 - value for betas and momenta; value x 10 for knobs the seed has at 0).
- Cost: ridge regression of log2(training seconds) on the size knobs' x (a wider or deeper model, a
  larger batch take longer per token).
- Noise: val_bpb(genome, seed) = mean(genome) + offset(seed) + e: from genomes scored at seed 0 and at
  seed k, the mean difference is offset(k) - offset(0) and half its variance is var(e); the seed genome's
  spread over training seeds 0-4 less var(e) is the offsets' variance.
Fit quality: Spearman rank correlation of held-out predictions, each search run held out in turn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from benchmarks.landscape_data import Observation, seed_knobs

PAIRS = (
    ("MODEL_DIM[cpu]", "DEPTH[cpu]"),
    ("MATRIX_LR", "MODEL_DIM[cpu]"),
    ("MATRIX_LR", "DEPTH[cpu]"),
    ("MATRIX_LR", "DEVICE_BATCH_SIZE[cpu]"),
    ("MATRIX_LR", "WARMDOWN_FRAC"),
    ("HEAD_DIM[cpu]", "MODEL_DIM[cpu]"),
)
SIZE_KNOBS = (
    "DEPTH[cpu]",
    "MODEL_DIM[cpu]",
    "HEAD_DIM[cpu]",
    "MLP_RATIO",
    "DEVICE_BATCH_SIZE[cpu]",
    "GRAD_ACCUM_STEPS[cpu]",
    "NS_STEPS",
)
LAMBDAS = (0.01, 0.1, 0.3, 1.0, 3.0, 10.0)


def position(name: str, value: float, seed_value: float) -> float:
    """A knob's coordinate: 0 at the seed's value, about 1 per doubling."""
    if seed_value == 0:
        return 10.0 * value
    if ("BETA" in name or "MOMENTUM" in name) and 0 < seed_value < 1:
        return math.log2(max(1e-6, 1 - value) / (1 - seed_value))
    return math.log2(max(value, 1e-12) / seed_value)


class Features:
    """Knob values -> the regression's feature vector (and the cost regression's)."""

    def __init__(self, seed: dict[str, float]) -> None:
        self.seed = seed
        self.names = list(seed)
        self.index = {n: i for i, n in enumerate(self.names)}

    def positions(self, values: dict[str, float]) -> np.ndarray:
        return np.array([position(n, values[n], self.seed[n]) for n in self.names])

    def score_row(self, x: np.ndarray) -> np.ndarray:
        pairs = [x[self.index[a]] * x[self.index[b]] for a, b in PAIRS]
        return np.concatenate([x, x**2, pairs])

    def cost_row(self, x: np.ndarray) -> np.ndarray:
        return np.array([x[self.index[n]] for n in SIZE_KNOBS])


@dataclass(frozen=True)
class Fit:
    features: Features
    score_coef: np.ndarray
    score_mean: float  # intercept: the seed's predicted seed-0 val_bpb
    cost_coef: np.ndarray
    cost_mean: float  # log2 of the seed's predicted training seconds
    residual_sd: float  # in-sample residual of the score model
    noise_sd: float  # per (genome, seed) noise
    offset_sd: float  # per-training-seed offset shared by every genome
    low: np.ndarray  # per knob, the lowest and highest position the data saw
    high: np.ndarray

    def mean(self, x: np.ndarray) -> float:
        return self.score_mean + float(self.features.score_row(x) @ self.score_coef)

    def seconds(self, x: np.ndarray) -> float:
        return 2.0 ** (self.cost_mean + float(self.features.cost_row(x) @ self.cost_coef))


def ridge(rows: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
    """Coefficients and intercept; features are not scaled (they share the log2 unit)."""
    mean_x, mean_y = rows.mean(axis=0), y.mean()
    a = rows - mean_x
    coef = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ (y - mean_y))
    return coef, float(mean_y - mean_x @ coef)


def fit(observations: list[Observation], lam: float = 1.0) -> Fit:
    feats = Features(seed_knobs())
    zero = [o for o in observations if o.training_seed == 0]
    xs = np.array([feats.positions(o.values) for o in zero])
    rows = np.array([feats.score_row(x) for x in xs])
    y = np.array([o.val_bpb for o in zero])
    coef, intercept = ridge(rows, y, lam)
    cost_rows = np.array([feats.cost_row(x) for x in xs])
    cost_coef, cost_intercept = ridge(cost_rows, np.log2([o.seconds for o in zero]), 0.1)
    residual = float(np.std(y - (rows @ coef + intercept)))
    noise_sd, offset_sd = noise(observations)
    low, high = xs.min(axis=0), xs.max(axis=0)
    return Fit(feats, coef, intercept, cost_coef, cost_intercept, residual, noise_sd, offset_sd, low, high)


def noise(observations: list[Observation]) -> tuple[float, float]:
    """(per-evaluation sd, per-training-seed offset sd) from genomes scored at more than one seed."""
    by_genome: dict[tuple, dict[int, float]] = {}
    for o in observations:
        by_genome.setdefault((o.group, o.knobs), {}).setdefault(o.training_seed, o.val_bpb)
    diffs: dict[int, list[float]] = {}
    for scores in by_genome.values():
        for seed, value in scores.items():
            if seed != 0 and 0 in scores:
                diffs.setdefault(seed, []).append(value - scores[0])
    centred = [d - np.mean(ds) for ds in diffs.values() for d in ds]
    noise_sd = float(np.sqrt(np.mean(np.square(centred)) / 2)) if centred else 0.0
    seed_values = [o.val_bpb for o in observations if o.group == "noise-0"]
    spread = float(np.var(seed_values, ddof=1)) if len(seed_values) > 1 else 0.0
    offsets = [float(np.mean(ds)) for ds in diffs.values()]
    offset_var = max(spread - noise_sd**2, float(np.mean(np.square(offsets))) / 2 if offsets else 0.0)
    return noise_sd, math.sqrt(max(offset_var, 0.0))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def held_out(observations: list[Observation], lam: float) -> dict:
    """Each search run held out in turn; Spearman of predicted vs measured seed-0 val_bpb, pooled and per run."""
    groups = sorted({o.group for o in observations if o.training_seed == 0 and not o.group.startswith("noise")})
    predicted, measured, per_run = [], [], {}
    for group in groups:
        model = fit([o for o in observations if o.group != group], lam)
        test = [o for o in observations if o.group == group and o.training_seed == 0]
        p = [model.mean(model.features.positions(o.values)) for o in test]
        m = [o.val_bpb for o in test]
        predicted += p
        measured += m
        if len(test) >= 5:
            per_run[group] = round(spearman(np.array(p), np.array(m)), 3)
    return {
        "spearman_pooled": round(spearman(np.array(predicted), np.array(measured)), 3),
        "spearman_per_run": per_run,
        "spearman_per_run_median": round(float(np.median(list(per_run.values()))), 3),
        "points": len(measured),
        "lambda": lam,
    }


def best_lambda(observations: list[Observation]) -> tuple[float, dict]:
    """The ridge strength with the best pooled held-out rank correlation, and that score."""
    scored = [held_out(observations, lam) for lam in LAMBDAS]
    best = max(scored, key=lambda s: s["spearman_pooled"])
    return best["lambda"], best
