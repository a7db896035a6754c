"""The scorer's compute budget: a model's scoring forwards may cost a small multiple of an honest model's.

Compute spent inside a forward at scoring time is free to the genome (its clock stopped at submit), so a
graph could think for as long as the scorer lets it: loop its layers, search, or just burn cycles. The
budget is MULTIPLE times what an honest model of the same size needs for the same forwards, measured,
not modelled: a seed-shaped transformer (embedding, attention and ReLU² MLP blocks, a linear head) with as
many matmul weights, run on the same batch, sequence length and vocabulary, in the scorer itself, just
before. The clock is the scorer's CPU-seconds on CPU (time.process_time: all its threads, and what other
processes take from it does not count, so a loaded machine neither shrinks nor grows the budget much) and
wall seconds on a GPU. A model past its budget is stopped mid-forward (an interval timer on the same
clock) and is `over_budget`, with both figures in the reason.

What "the same size" counts: a weight counts up to its number of elements, as far as the graph multiplies
it against every token (the FLOPs of the matmuls and convolutions it feeds, over 2 per token). Unused
weights, embedding tables and weights multiplied against a single row add nothing. What remains: a genome
can add D weights that it multiplies against every token, at the cost of that compute; it buys itself
MULTIPLE times as much, as an honest model D weights larger would get.
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import time
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from fitness.scoring import ContractError, Forward

MULTIPLE = 8.0  # times an honest model's cost for the same forwards
SLACK_S = 0.5  # clock seconds on top: timer granularity, first-call allocations
_MATMULS = {"linear", "mm", "addmm", "bmm", "baddbmm", "matmul", "convolution", "_convolution", "conv1d", "conv2d"}
_VIEWS = {"t", "transpose", "permute", "view", "reshape", "_to_copy", "to", "alias", "detach", "contiguous"}
_VIEWS |= {"clone", "unsqueeze", "squeeze", "expand", "type_as", "lift_fresh_copy", "view_as", "flatten"}


def matmul_weights(program: torch.export.ExportedProgram) -> int:
    """Elements of the program's weights, buffers and constants that its matmuls use on every token."""
    signature = program.graph_signature
    held = {**signature.inputs_to_parameters, **signature.inputs_to_buffers}
    held.update(signature.inputs_to_lifted_tensor_constants)
    placeholders = [n for n in program.graph_module.graph.nodes if n.op == "placeholder"]
    tokens = sum(_numel(n) for n in placeholders if n.name in signature.user_inputs)
    total = 0
    for node in placeholders:
        if node.name in held and tokens:
            flops = sum(_flops(user) for user in _consumers(node))
            total += min(_numel(node), flops // (2 * tokens))
    return total


def _consumers(node: torch.fx.Node) -> Iterator[torch.fx.Node]:
    """The matmuls that `node` reaches through views and casts, into autocast, grad-mode and cond regions."""
    seen, stack = set(), list(node.users)
    while stack:
        user = stack.pop()
        if user in seen:
            continue
        seen.add(user)
        if isinstance(user.target, torch._ops.HigherOrderOperator):
            stack.extend(p for inner in _inside(user, node) for p in inner.users)
        elif isinstance(user.target, torch._ops.OpOverload) and user.target._opname in _MATMULS:
            yield user
        elif isinstance(user.target, torch._ops.OpOverload) and user.target._opname in _VIEWS:
            stack.extend(user.users)


def _inside(call: torch.fx.Node, operand: torch.fx.Node) -> list[torch.fx.Node]:
    """The placeholders that `operand` becomes in the region graphs of a control-flow call."""
    args = list(call.args)
    regions = [i for i, a in enumerate(args) if isinstance(a, torch.fx.Node) and a.op == "get_attr"]
    if not regions:
        return []
    operands = args[regions[-1] + 1 :]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):  # cond(pred, true, false, operands)
        operands = list(operands[0])
    found = []
    for i in regions:
        graph = getattr(call.graph.owning_module, args[i].target).graph
        inputs = [n for n in graph.nodes if n.op == "placeholder"]
        found += [inputs[k] for k, a in enumerate(operands) if a is operand and k < len(inputs)]
    return found


def _flops(node: torch.fx.Node) -> int:
    """2 x output elements x contraction length of a matmul or convolution node."""
    name = node.target._opname
    if name in ("convolution", "_convolution", "conv1d", "conv2d"):
        weight = node.args[1].meta["val"]
        inner = weight.numel() // weight.shape[0]
    else:
        first = node.args[1] if name in ("addmm", "baddbmm") else node.args[0]
        inner = first.meta["val"].shape[-1]
    return 2 * _numel(node) * int(inner)


def _numel(node: torch.fx.Node) -> int:
    value = node.meta.get("val")
    return int(value.numel()) if isinstance(value, torch.Tensor) else 0


# --- the honest reference ------------------------------------------------------------------------------
class _Reference(torch.nn.Module):
    """A seed-shaped transformer: `depth` blocks of width `width`, 12 * width² matmul weights each."""

    def __init__(self, vocab: int, width: int, depth: int, heads: int):
        super().__init__()
        self.heads = heads
        self.embed = torch.nn.Embedding(vocab, width)
        self.blocks = torch.nn.ModuleList(
            torch.nn.ModuleList(torch.nn.Linear(i, o, bias=False) for i, o in _block_shapes(width))
            for _ in range(depth)
        )
        self.head = torch.nn.Linear(width, vocab, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)
        batch, length, width = x.shape
        for qkv, proj, up, down in self.blocks:
            q, k, v = qkv(F.rms_norm(x, (width,))).view(batch, length, 3, self.heads, -1).transpose(1, 3).unbind(2)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + proj(y.transpose(1, 2).reshape(batch, length, width))
            x = x + down(F.relu(up(F.rms_norm(x, (width,)))).square())
        return self.head(F.rms_norm(x, (width,)))


def _block_shapes(width: int) -> list[tuple[int, int]]:
    return [(width, 3 * width), (width, width), (width, 4 * width), (4 * width, width)]


def reference_shape(weights: int, vocab: int) -> tuple[int, int, int]:
    """(depth, width, heads) of a reference with about `weights` matmul weights (head included), 64 wide
    per block of depth as nanochat's models are, at least 16 wide."""
    depth = max(1, round((weights / (12 * 64**2)) ** (1 / 3)))
    width = (-vocab + math.sqrt(vocab**2 + 48 * depth * max(weights, 0))) / (24 * depth)
    heads = max(1, round(width / 64))
    head_dim = max(16, 16 * round(width / heads / 16))
    return depth, heads * head_dim, heads


@functools.cache
def reference_seconds(weights_bucket: int, batch: int, length: int, vocab: int, device: str, threads: int) -> float:
    """Clock seconds of one forward of the reference (the faster of two after a first one), measured once
    per process for each shape and thread count (`threads`: torch's, which the measurement runs with)."""
    depth, width, heads = reference_shape(weights_bucket, vocab)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        model = _Reference(vocab, width, depth, heads).to(device)
        idx = torch.randint(0, vocab, (batch, length), device=device)
        clock = Clock(torch.device(device))
        model(idx)
        times = []
        for _ in range(2):
            start = clock.now()
            model(idx)
            times.append(clock.now() - start)
    return min(times)


def bucket(weights: int) -> int:
    """Round up to a quarter power of two, so that children of about the same size share one reference."""
    return 0 if weights <= 0 else int(2 ** (math.ceil(4 * math.log2(weights)) / 4))


# --- the clock and the meter ----------------------------------------------------------------------------
class Clock:
    """CPU-seconds of this process on CPU, wall seconds (after a sync) on a GPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.unit = "s" if self.cuda else "CPU-s"
        self.timer = signal.ITIMER_REAL if self.cuda else signal.ITIMER_PROF
        self.signal = signal.SIGALRM if self.cuda else signal.SIGPROF

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            return time.perf_counter()
        return time.process_time()


# The CPU interval timer (ITIMER_PROF) counts in scheduler ticks and fired 19 ms early against the
# process's exact CPU time once (0.181 of 0.2 CPU-s, a CI run): the timer is armed this much past the
# allowance, so it only interrupts, and the exact clock is what says a forward went over.
TIMER_MARGIN_S = 0.03


class _OutOfTime(BaseException):
    """Raised by the interval timer inside a forward (BaseException: no handler in a graph's path eats it)."""


class Meter:
    """A forward whose clock seconds add up against an allowance; past it, ContractError over_budget."""

    def __init__(self, forward: Forward, allowed: float, clock: Clock, why: str):
        self.forward, self.allowed, self.clock, self.why = forward, allowed, clock, why
        self.used = 0.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        start = self.clock.now()
        try:
            with self._alarm(max(self.allowed - self.used, 1e-3) + TIMER_MARGIN_S):
                out = self.forward(x)
        except _OutOfTime:
            out = None
        self.used += self.clock.now() - start
        if out is None or self.used > self.allowed:
            took = f"{'stopped after' if out is None else 'took'} {self.used:.2f} {self.clock.unit}"
            raise ContractError("over_budget", f"scoring forwards {took}, allowed {self.allowed:.2f}: {self.why}")
        return out

    @contextlib.contextmanager
    def _alarm(self, seconds: float) -> Iterator[None]:
        def stop(signum: int, frame: object) -> None:
            raise _OutOfTime

        previous = signal.signal(self.clock.signal, stop)
        signal.setitimer(self.clock.timer, seconds)
        try:
            yield
        finally:
            signal.setitimer(self.clock.timer, 0)
            signal.signal(self.clock.signal, previous)


def meter(forward: Forward, weights: int, forwards: int, x_shape: tuple[int, int], vocab: int, device) -> Meter:
    """`forward`, allowed MULTIPLE times the reference's seconds for `forwards` forwards, plus SLACK_S."""
    device = torch.device(device)
    one = reference_seconds(bucket(weights), x_shape[0], x_shape[1], vocab, str(device), torch.get_num_threads())
    allowed = MULTIPLE * one * forwards + SLACK_S
    why = f"{MULTIPLE:g}x an honest transformer with its {weights} matmul weights"
    why += f" ({one:.3f} per forward, {forwards} forwards)"
    return Meter(forward, allowed, Clock(device), why)
