"""Hyperparameter mutation: perturb the genome's UPPER_CASE numeric knobs, without any network.

A knob is a module-level `NAME = <number>` or `NAME = {"h100": .., "cpu": ..}[PROFILE]`; for the
latter only the current profile's entry is a knob. autoresearch's forms count too: each number of a
tuple (`ADAM_BETAS = (0.8, 0.95)` is ADAM_BETAS[0] and ADAM_BETAS[1]) and a power of two written
`2**19`, which stays one and keeps that spelling. The new value is written over just the old literal's
characters, so comments and formatting survive. Pure: randomness comes from the caller.
"""

from __future__ import annotations

import ast
import math
import random
import re
from dataclasses import dataclass

from mutators.accept import IsDuplicate, parse, vet
from mutators.messages import Draft, ParentInfo, Proposal, failed

_UPPER = re.compile(r"^[A-Z][A-Z0-9_]*$")
SIGMA = 0.35  # log-normal spread of a float perturbation: about x0.7 to x1.4 one time in three
MAX_TRIES = 50  # perturbations tried before giving up on finding a valid, new child


@dataclass(frozen=True)
class Knob:
    name: str  # "MATRIX_LR", or "DEPTH[smoke]" for a per-profile entry
    value: int | float
    line: int  # 1-based
    col: int  # UTF-8 byte offsets of the literal within its line, as ast reports them
    end_col: int
    power: bool = False  # written as 2**n

    @property
    def base_name(self) -> str:
        return self.name.split("[")[0]


def find_knobs(source: str, profile: str) -> list[Knob]:
    """The numeric knobs of `source` as seen under `profile`, in file order."""
    knobs = []
    for node in parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        if _UPPER.match(node.targets[0].id):
            knobs.extend(_knobs_of(node.targets[0].id, node.value, profile))
    return knobs


def _knobs_of(name: str, value: ast.expr, profile: str) -> list[Knob]:
    if _is_number(value):
        return [_knob(name, value, value.value)]
    if _is_power_of_two(value):
        return [_knob(name, value, 2**value.right.value, power=True)]
    if isinstance(value, ast.Tuple):
        return [_knob(f"{name}[{i}]", entry, entry.value) for i, entry in enumerate(value.elts) if _is_number(entry)]
    if (
        isinstance(value, ast.Subscript)
        and isinstance(value.value, ast.Dict)
        and isinstance(value.slice, ast.Name)
        and value.slice.id == "PROFILE"
    ):
        for key, entry in zip(value.value.keys, value.value.values, strict=True):
            if isinstance(key, ast.Constant) and key.value == profile and _is_number(entry):
                return [_knob(f"{name}[{profile}]", entry, entry.value)]
    return []


def _knob(name: str, node: ast.expr, value: int | float, power: bool = False) -> Knob:
    return Knob(name, value, node.lineno, node.col_offset, node.end_col_offset, power)


def _is_power_of_two(node: ast.expr) -> bool:
    """`2**n` for a literal n >= 1, on one line."""
    return (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Pow)
        and isinstance(node.left, ast.Constant)
        and node.left.value == 2
        and _is_number(node.right)
        and isinstance(node.right.value, int)
        and node.lineno == node.end_lineno
    )


def _is_number(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
        and math.isfinite(node.value)
        and (isinstance(node.value, float) or node.value >= 1)  # ints below 1 are flags, not sizes
    )


def perturb(name: str, value: int | float, rng: random.Random) -> int | float:
    """A nearby value of the same type, kept in the knob's valid range."""
    if isinstance(value, int):
        if value & (value - 1) == 0:  # a power of two stays one
            return value * 2 if value == 1 or rng.random() < 0.5 else value // 2
        step = rng.randint(1, max(1, round(value * 0.25)))
        return max(1, value + rng.choice((-step, step)))
    factor = math.exp(rng.gauss(0.0, SIGMA))
    if ("BETA" in name or "MOMENTUM" in name) and 0.0 < value < 1.0:  # move 1 - beta, not beta
        return _round(min(0.9999, max(0.5, 1.0 - (1.0 - value) * factor)))
    if value == 0.0:
        new = rng.uniform(0.02, 0.2) if name.endswith("_FRAC") else 10 ** rng.uniform(-3, -1)
        return _round(new)
    new = value * factor
    return _round(min(1.0, new) if name.endswith("_FRAC") else new)


def _round(value: float) -> float:
    return float(f"{value:.3g}")


def render(value: int | float, power: bool = False) -> str:
    """Python source for `value`; repr keeps floats looking like floats (15.0, 1e-05); `power` writes 2**n."""
    if power and isinstance(value, int) and value > 1 and value & (value - 1) == 0:
        return f"2**{value.bit_length() - 1}"
    return repr(value)


def rewrite(source: str, changes: list[tuple[Knob, int | float]]) -> str:
    """Replace each knob's literal with its new value, touching nothing else."""
    return splice(source, [(knob, render(new, knob.power)) for knob, new in changes])


def splice(source: str, edits: list[tuple[Knob, str]]) -> str:
    """`source` with each knob's literal replaced by the given text, touching nothing else."""
    lines = source.splitlines(keepends=True)
    for knob, text in sorted(edits, key=lambda e: (e[0].line, e[0].col), reverse=True):
        raw = lines[knob.line - 1].encode()
        lines[knob.line - 1] = (raw[: knob.col] + text.encode() + raw[knob.end_col :]).decode()
    return "".join(lines)


def literal(source: str, knob: Knob) -> str:
    """The knob's literal as `source` spells it."""
    raw = source.splitlines(keepends=True)[knob.line - 1].encode()
    return raw[knob.col : knob.end_col].decode()


def consistent(values: dict[str, int | float]) -> str | None:
    """None if knob values (by base name) fit together, else why not (a quick sanity rule)."""
    dim, head = values.get("MODEL_DIM"), values.get("HEAD_DIM")
    if isinstance(head, int) and head % 2:
        return f"HEAD_DIM {head} is odd (rotary embeddings need an even head width)"
    if isinstance(dim, int) and isinstance(head, int) and dim % head:
        return f"MODEL_DIM {dim} is not divisible by HEAD_DIM {head}"
    return None


def knob_changes(old: str, new: str, profile: str) -> tuple[str, ...]:
    """'NAME old -> new' for every knob whose value differs between two sources."""
    try:
        before = {k.name: k.value for k in find_knobs(old, profile)}
        after = {k.name: k.value for k in find_knobs(new, profile)}
    except SyntaxError:
        return ()
    return tuple(
        f"{name} {render(before[name])} -> {render(value)}"
        for name, value in after.items()
        if name in before and before[name] != value
    )


def hyperparam(parent: ParentInfo, profile: str, rng: random.Random, is_duplicate: IsDuplicate | None) -> Proposal:
    """Perturb one knob (sometimes two) of `parent`; retry until the child is valid and new."""
    knobs = find_knobs(parent.source, profile)
    if not knobs:
        return failed("invalid", "hyperparam", f"no numeric UPPER_CASE knobs found for profile {profile!r}")
    status, reason = "unchanged", "no perturbation changed a value"
    for _ in range(MAX_TRIES):
        chosen = rng.sample(knobs, 1 if len(knobs) == 1 or rng.random() < 0.7 else 2)
        changes = [(k, perturb(k.base_name, k.value, rng)) for k in chosen]
        if any(new == k.value for k, new in changes):
            continue
        values = {k.base_name: k.value for k in knobs} | {k.base_name: new for k, new in changes}
        problem = consistent(values)
        source = rewrite(parent.source, changes)
        verdict = ("invalid", problem) if problem else vet(source, [parent.source], is_duplicate)
        if verdict is None:
            lines = tuple(f"{k.name} {render(k.value, k.power)} -> {render(new, k.power)}" for k, new in changes)
            return Proposal(
                "ok", "hyperparam", draft=Draft(source, ", ".join(lines), "hyperparam", (parent.id,), lines)
            )
        status, reason = verdict
    return failed(status, "hyperparam", f"no valid new child in {MAX_TRIES} tries; last: {reason}")
