"""One model's scoring run: every scored batch once, and the contract probes hidden among them.

A probe is a scored batch with text from other scored rows spliced in, compared against the logits that
same batch is scored with. Independence: a random half of the rows are replaced by other scored rows; the
kept rows' predictions must not move at any position (a row cannot read another, e.g. the next row, which
holds its continuation). Causality: every row k gets another row's tokens after its own random cut t_k
(the cuts run through the positions without repeats); its predictions at positions <= t_k must not move.

Probes look like scoring forwards: the same shape, real text (never noise a graph could recognise), bases
drawn at random among the val and test batches, and each probe run just before or just after its base at
a random place in the order of forwards, never all first. A graph that peeks ahead at a fraction f of the
positions survives with probability about (1 - f) ** (count * rows). The graph cannot count forwards to
tell them apart: safeload restores its state after each one and refuses random operators.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch

from fitness.scoring import (
    CAUSALITY_ATOL,
    ContractError,
    Forward,
    bits_per_byte,
    check_logits,
    gap,
    nats_and_bytes,
)


@dataclass(frozen=True)
class Scores:
    bpb: dict[str, float]  # bits per byte of each split
    seconds: dict[str, float]  # wall seconds in scored batches ("eval") and in probes ("probe"), with checks


@dataclass(frozen=True)
class Batch:
    split: str
    x: torch.Tensor  # [B, T] inputs; the last rows repeat the split's last row when it runs short
    y: torch.Tensor  # [n_real, T] targets
    n_real: int


@dataclass(frozen=True)
class Probe:
    base: int  # the scored batch it is compared with
    x: torch.Tensor  # [B, T]: that batch with other rows' text spliced in
    compared: torch.Tensor  # [B, T] bool: the predictions that must not move
    cuts: torch.Tensor | None  # [B] causality probe: row k is new after cuts[k]; None: independence probe


def score(
    forward: Forward,
    splits: dict[str, torch.Tensor],
    token_bytes: torch.Tensor,
    batch_size: int,
    count: int,
    seed: int | None = None,
) -> Scores:
    """Bits per byte of each split's rows [N, T+1] (inputs row[:-1], targets row[1:]), probes hidden among
    the forwards; drawn from `seed`, or from the OS when None, so that a graph cannot know what is checked."""
    if batch_size < 2:
        raise ValueError(f"the probes need batches of at least 2 rows, got {batch_size}")
    seed = int.from_bytes(os.urandom(8), "little") if seed is None else seed
    generator = torch.Generator().manual_seed(seed)
    work = [batch for split, rows in splits.items() for batch in batches(split, rows, batch_size)]
    probes = draw([batch.x for batch in work], count, generator)
    return run(forward, work, probes, token_bytes, generator)


def batches(split: str, rows: torch.Tensor, batch_size: int) -> list[Batch]:
    """Scoring rows [N, T+1] as fixed-size input batches (exported graphs have a fixed batch: pad)."""
    out = []
    for i in range(0, rows.size(0), batch_size):
        chunk = rows[i : i + batch_size]
        x, n_real = chunk[:, :-1], chunk.size(0)
        if n_real < batch_size:
            x = torch.cat([x, x[-1:].expand(batch_size - n_real, -1)])
        out.append(Batch(split, x.contiguous(), chunk[:, 1:], n_real))
    return out


def draw(inputs: list[torch.Tensor], count: int, generator: torch.Generator) -> list[Probe]:
    """One independence probe and `count` causality probes on batches drawn at random (distinct while there
    are enough), spliced with rows drawn at random from all of `inputs`."""
    pool = torch.cat([x.cpu() for x in inputs])
    bases = torch.randperm(len(inputs), generator=generator).repeat(-(-(count + 1) // len(inputs)))
    probes = [_independence(int(bases[0]), inputs[int(bases[0])], pool, generator)]
    rows, length = inputs[0].shape
    cuts = torch.randperm(length - 1, generator=generator).repeat(-(-count * rows // (length - 1)))
    for i in range(count):
        base = int(bases[i + 1])
        probes.append(_causality(base, inputs[base], pool, cuts[i * rows : (i + 1) * rows], generator))
    return probes


def _donors(x: torch.Tensor, pool: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For each row of x, another scored row (one that differs from it)."""
    picks = torch.randint(0, pool.size(0), (x.size(0),), generator=generator)
    same = (pool[picks] == x.cpu()).all(dim=1)
    picks[same] = (picks[same] + 1) % pool.size(0)
    return pool[picks].to(x.device)


def _independence(base: int, x: torch.Tensor, pool: torch.Tensor, generator: torch.Generator) -> Probe:
    keep = torch.rand(x.size(0), generator=generator) < 0.5
    keep[0], keep[1] = True, False  # at least one row of each kind
    keep = keep[torch.randperm(x.size(0), generator=generator)].to(x.device)
    changed = torch.where(keep[:, None], x, _donors(x, pool, generator))
    return Probe(base, changed, keep[:, None].expand_as(x), None)


def _causality(base: int, x: torch.Tensor, pool: torch.Tensor, cuts: torch.Tensor, generator: torch.Generator) -> Probe:
    after = (torch.arange(x.size(1))[None, :] > cuts[:, None]).to(x.device)  # [B, T]: the positions made new
    changed = torch.where(after, _donors(x, pool, generator), x)
    return Probe(base, changed, ~after, cuts)


def schedule(n_batches: int, probes: list[Probe], generator: torch.Generator) -> list[tuple[str, int]]:
    """Every batch and probe once: each batch with its probes in a random order, those groups shuffled."""
    groups: list[list[tuple[str, int]]] = [[("batch", b)] for b in range(n_batches)]
    for j, probe in enumerate(probes):
        groups[probe.base].append(("probe", j))
    order: list[tuple[str, int]] = []
    for g in torch.randperm(n_batches, generator=generator).tolist():
        group = groups[g]
        order += [group[k] for k in torch.randperm(len(group), generator=generator).tolist()]
    return order


def judge(probe: Probe, base: torch.Tensor, logits: torch.Tensor) -> None:
    """Refuse the model if a prediction the probe must leave alone moved by more than CAUSALITY_ATOL."""
    moved = gap(base, logits, probe.compared.to(base.device))
    leak = float(moved.max())
    if leak <= CAUSALITY_ATOL:
        return
    if probe.cuts is None:
        raise ContractError(
            "invalid", f"rows are not independent: replacing other rows moves a row's predictions by {leak:.3g} nats"
        )
    row = int(moved.amax(dim=1).argmax())
    raise ContractError(
        "invalid",
        f"non-causal: predictions at positions <= {int(probe.cuts[row])} change by {leak:.3g} nats "
        "when later tokens change",
    )


def run(
    forward: Forward, work: list[Batch], probes: list[Probe], token_bytes: torch.Tensor, generator: torch.Generator
) -> Scores:
    """Run every forward in a random order: bits per byte of each split, once every probe has passed."""
    ledger = _Ledger(work, probes, token_bytes)
    seconds = {"eval": 0.0, "probe": 0.0}
    for kind, i in schedule(len(work), probes, generator):
        started = time.perf_counter()
        x = work[i].x if kind == "batch" else probes[i].x
        logits = forward(x)
        check_logits(logits, x.size(0), x.size(1), token_bytes.numel())
        if kind == "batch":
            ledger.batch(i, logits)
        else:
            ledger.probe(i, logits)
        seconds["eval" if kind == "batch" else "probe"] += time.perf_counter() - started
    bpb = {split: bits_per_byte(nats, nbytes) for split, (nats, nbytes) in ledger.totals.items()}
    return Scores(bpb, seconds)


class _Ledger:
    """Nats and bytes per split, and the logits a pending comparison needs: a batch's logits are kept only
    while one of its probes is still to run, a probe's only while its batch is."""

    def __init__(self, work: list[Batch], probes: list[Probe], token_bytes: torch.Tensor):
        self.work, self.probes, self.token_bytes = work, probes, token_bytes
        self.totals: dict[str, tuple[float, int]] = {b.split: (0.0, 0) for b in work}
        self.left = {b: sum(p.base == b for p in probes) for b in range(len(work))}
        self.kept: dict[int, torch.Tensor] = {}
        self.waiting: dict[int, list[tuple[Probe, torch.Tensor]]] = {}

    def batch(self, i: int, logits: torch.Tensor) -> None:
        batch = self.work[i]
        nats, nbytes = nats_and_bytes(logits[: batch.n_real], batch.y, self.token_bytes)
        total = self.totals[batch.split]
        self.totals[batch.split] = (total[0] + nats, total[1] + nbytes)
        for probe, probed in self.waiting.pop(i, []):
            self._compare(probe, logits, probed)
        if self.left[i]:
            self.kept[i] = logits

    def probe(self, j: int, logits: torch.Tensor) -> None:
        probe = self.probes[j]
        if probe.base in self.kept:
            self._compare(probe, self.kept[probe.base], logits)
        else:
            self.waiting.setdefault(probe.base, []).append((probe, logits))

    def _compare(self, probe: Probe, base: torch.Tensor, logits: torch.Tensor) -> None:
        judge(probe, base, logits)
        self.left[probe.base] -= 1
        if not self.left[probe.base]:
            self.kept.pop(probe.base, None)
