"""Selection: pure functions over ranked candidates. No state, no clock; randomness comes in as an argument.

Ranking is by mean val_bpb (lower is better), then by source size (at equal val_bpb the simpler genome
wins), then by id so that ties never depend on dict order. Only candidates with at least one ok
evaluation are ranked: failed children never become parents.

Noise: val_bpb moves by a few 1e-4 between identical runs. `incumbent` lets a challenger take the lead
only when it beats the trusted best by `margin * sigma`, or when enough repeat evaluations confirm it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from population.messages import Fitness


@dataclass(frozen=True)
class Candidate:
    """What selection knows about one genome."""

    id: str
    fitness: Fitness
    size: int  # characters of source: the simplicity tie-break

    @property
    def key(self) -> tuple[float, int, str]:
        return (self.fitness.mean, self.size, self.id)


def rank(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Candidates with an ok evaluation, best first."""
    return sorted((c for c in candidates if c.fitness.count > 0), key=lambda c: c.key)


def tournament(ranked: Sequence[Candidate], k: int, n: int, rng: random.Random) -> list[Candidate]:
    """`n` picks, each the best of `k` contestants drawn uniformly with replacement from `ranked`.

    The candidate at rank r (1 = best) of m wins a pick with probability ((m-r+1)^k - (m-r)^k) / m^k.
    """
    if not ranked:
        return []
    return [ranked[min(rng.randrange(len(ranked)) for _ in range(k))] for _ in range(n)]


def pool_tournament_size(pool: int, minimum: int, share: float) -> int:
    """Contestants per pick over a pool of `pool`: `share` of it, at least `minimum` (the pressure grows
    with the pool, so its best wins about 1 - exp(-share) of the picks whatever the pool's size)."""
    return max(minimum, math.ceil(share * pool))


def power_rank(ranked: Sequence[Candidate], power: float, n: int, rng: random.Random) -> list[Candidate]:
    """`n` picks, rank r (1 = best) with probability proportional to r ** -power."""
    if not ranked:
        return []
    weights = [(r + 1) ** -power for r in range(len(ranked))]
    return rng.choices(list(ranked), weights=weights, k=n)


def select_survivors(
    ranked: Sequence[Candidate], size: int, elites: Sequence[Candidate], k: int, rng: random.Random
) -> list[Candidate]:
    """Keep `size` candidates: every elite, then tournament winners (without replacement) from the rest.

    `ranked` is best first; `elites` (usually the incumbent plus the next best) always survive.
    The result is in rank order.
    """
    keep = {c.id: c for c in elites[:size]}
    rest = [c for c in ranked if c.id not in keep]
    while len(keep) < size and rest:
        winner = min(rng.randrange(len(rest)) for _ in range(k))
        chosen = rest.pop(winner)
        keep[chosen.id] = chosen
    order = {c.id: i for i, c in enumerate(ranked)}
    return sorted(keep.values(), key=lambda c: order.get(c.id, len(order)))


def incumbent(
    leader: Candidate | None, anchor: Candidate | None, sigma: float | None, margin: float
) -> Candidate | None:
    """The noise-gated best.

    Trusted genomes are the seed and every genome with enough (confirm_repeats) ok evaluations;
    `anchor` is the best trusted one and `leader` the best by mean of all. The leader displaces the
    anchor only when it is better by more than `margin * sigma` (never while sigma is unknown), so
    one lucky run inside the noise band can't take the lead; repeats that confirm it can.
    """
    if anchor is None:
        return leader
    if leader is not None and sigma is not None and leader.fitness.mean < anchor.fitness.mean - margin * sigma:
        return leader
    return anchor


def repeat_candidates(
    ranked: Iterable[Candidate],
    best: Candidate | None,
    n: int,
    sigma: float | None,
    margin: float,
    confirm: int,
) -> list[str]:
    """Up to `n` genome ids worth another evaluation, most urgent first (at most one while sigma is known).

    While sigma is unknown the best (normally the seed) comes first, to measure the noise, then the leader.
    Then only the would-be best gets repeats: the leader by mean (first in `ranked`) while it is unconfirmed
    and either beats `best` inside the noise band (it cannot lead until repeats confirm it) or is `best`
    itself with the runner-up within `margin * sigma` of it. Genomes level with the best or behind it get
    none, nor does a clear win (repeats could not change the ranking): repeating every genome inside the
    band spent most repeats on neutral mutations tied with their parent (see the search benchmark).
    """
    if best is None or n <= 0:
        return []
    ranked = iter(ranked)
    leader = next(ranked, best)
    if sigma is None:
        out = [best.id] if best.fitness.count < confirm else []
        out += [leader.id] if leader.fitness.count < confirm and leader.id not in out else []
        return out[:n]
    if leader.fitness.count >= confirm:
        return []
    if leader.id != best.id:
        return [leader.id] if leader.fitness.mean < best.fitness.mean else []
    runner_up = next(ranked, None)  # the closest challenger
    contested = runner_up is not None and runner_up.fitness.mean <= best.fitness.mean + margin * sigma
    return [best.id] if contested else []
