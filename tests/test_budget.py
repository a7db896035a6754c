"""The scorer's compute budget: what counts as a model's size, the honest reference, the meter that stops."""

from __future__ import annotations

import pytest
import torch

from fitness import budget, scoring

X = torch.zeros(4, 8, dtype=torch.long)


def exported(model: torch.nn.Module) -> torch.export.ExportedProgram:
    return torch.export.export(model.eval(), (X,), strict=False)


class Looped(torch.nn.Module):
    """Embedding, one 32x32 matmul applied `rounds` times, a 32->16 head, and a large weight it never uses."""

    def __init__(self, rounds: int):
        super().__init__()
        self.rounds = rounds
        self.embed = torch.nn.Embedding(16, 32)
        self.mix = torch.nn.Linear(32, 32, bias=False)
        self.head = torch.nn.Linear(32, 16, bias=False)
        self.unused = torch.nn.Parameter(torch.zeros(1000, 1000))

    def forward(self, idx):
        x = self.embed(idx)
        with torch.autocast("cuda", enabled=False):  # weights used inside a region count too
            for _ in range(self.rounds):
                x = torch.tanh(self.mix(x))
        return self.head(x)


def test_size_counts_each_matmul_weight_once_and_ignores_embeddings_and_unused_weights():
    assert budget.matmul_weights(exported(Looped(rounds=1))) == 32 * 32 + 32 * 16
    assert budget.matmul_weights(exported(Looped(rounds=12))) == 32 * 32 + 32 * 16  # looping buys nothing


def test_weights_multiplied_against_one_row_instead_of_every_token_do_not_count():
    class Padded(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.table = torch.nn.Embedding(16, 16)
            self.dummy = torch.nn.Linear(256, 256, bias=False)

        def forward(self, idx):
            cheap = self.dummy(torch.ones(1, 256)).sum()  # 2 x 65536 FLOPs per forward, not per token
            return self.table(idx) + 0.0 * cheap

    assert budget.matmul_weights(exported(Padded())) == 65536 // (4 * 8)


@pytest.mark.parametrize("weights", [0, 10_000, 131_072, 3_000_000, 50_000_000])
def test_reference_has_about_the_weights_asked_for(weights):
    depth, width, heads = budget.reference_shape(weights, vocab=512)
    assert width % heads == 0 and width >= 16
    actual = depth * 12 * width**2 + 512 * width
    assert weights == 0 or 0.5 < actual / weights < 2.0


def test_a_forward_past_its_allowance_is_stopped_midway_as_over_budget():
    weight = torch.randn(256, 256)
    calls = []

    def burner(x):
        calls.append(1)
        h = torch.randn(256, 256)
        for _ in range(100_000):  # far more than 0.2 s of CPU: the timer must stop it
            h = torch.tanh(h @ weight)
        return h

    meter = budget.Meter(burner, allowed=0.2, clock=budget.Clock(torch.device("cpu")), why="a test")
    with pytest.raises(scoring.ContractError) as stopped:
        meter(X)
    assert stopped.value.status == "over_budget"
    assert str(stopped.value).startswith("scoring forwards stopped after ")
    assert " CPU-s, allowed 0.20: a test" in str(stopped.value)
    assert 0.19 <= meter.used < 10.0  # the CPU timer fires on the kernel's accounting ticks: within a few ms


def test_forwards_within_the_allowance_pass_and_are_counted():
    meter = budget.Meter(lambda x: x + 1, allowed=5.0, clock=budget.Clock(torch.device("cpu")), why="a test")
    assert torch.equal(meter(X), X + 1) and torch.equal(meter(X), X + 1)
    assert 0.0 <= meter.used < 5.0
