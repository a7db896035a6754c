"""Knob-level 3-way merge: two parents' knob changes combined by name, the rest of the code by text.

`git merge-file` conflicts whenever both parents change lines next to each other, and the knobs of a
train.py are one per line in one block, so two parents that tuned different knobs used to conflict.
Here each knob (mutators.offline.find_knobs: by name, on the AST) is merged on its own: a knob one
parent changed takes that parent's value; both changing it to different values is a clash, settled
for the parent the caller prefers (the fitter one). Everything else goes through the textual 3-way
merge, after both parents' knob literals are set back to the ancestor's spelling, so knob edits never
make a hunk. The chosen literal keeps the spelling of the parent it came from (`2**11`, `3e-4`).
A transplant (`transplant_knobs`) is the knob half alone: one genome's knob changes since its common
ancestor with another, brought onto that other. Pure: no files but git merge-file's temporary ones.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mutators.offline import Knob, find_knobs, literal, render, splice


@dataclass(frozen=True)
class KnobMerge:
    source: str  # the merged text (with conflict markers when `conflicts` > 0)
    conflicts: int  # textual conflicts left in the non-knob code
    changes: tuple[str, ...]  # 'NAME old -> new (from X)' per knob changed vs the ancestor
    clashes: tuple[str, ...]  # knobs both parents changed differently (the preferred parent's value kept)


class MergeError(RuntimeError):
    """git merge-file itself failed (not a conflict): git missing or unusable."""


def three_way(ancestor: str, a: str, b: str) -> tuple[str, int]:
    """The textual 3-way merge: (merged text, number of conflicts); conflicts leave markers in the text."""
    with tempfile.TemporaryDirectory(prefix="evolve-merge-") as tmp:
        paths = [Path(tmp, name) for name in ("a.py", "ancestor.py", "b.py")]
        for path, text in zip(paths, (a, ancestor, b), strict=True):
            path.write_text(text)
        cmd = ["git", "merge-file", "-p", "-L", "a", "-L", "ancestor", "-L", "b", *map(str, paths)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise MergeError(f"git merge-file failed to run: {e}") from None
    if done.returncode < 0 or done.returncode > 127:
        raise MergeError(f"git merge-file failed: {done.stderr.strip()}")
    return done.stdout, done.returncode


def merge_values(base: Mapping, first: Mapping, second: Mapping) -> tuple[dict, tuple[str, ...]]:
    """Knob values merged by name over the names all three share, in `base`'s order: the side that changed a
    knob wins; both changed it differently: `first` wins (the names come back as clashes). The order is
    `base`'s, not a set's: a set of strings iterates in an order that changes with PYTHONHASHSEED, and a
    merged child whose knobs came in another order was mutated differently by the same random draws (the
    simulator's figures moved from one process to the next)."""
    merged, clashes = {}, []
    for name in (n for n in base if n in first and n in second):
        old, x, y = base[name], first[name], second[name]
        merged[name] = x if x != old else y
        if x != old and y != old and x != y:
            clashes.append(name)
    return merged, tuple(sorted(clashes))


def knob_three_way(
    ancestor: str, a: str, b: str, profile: str, labels: tuple[str, str] = ("a", "b"), prefer_b: bool = False
) -> KnobMerge:
    """Merge `a` and `b` over `ancestor`, knobs by name (`labels` name the parents in the changes).
    Raises SyntaxError if a source does not parse, MergeError if git merge-file cannot run."""
    kbase, ka, kb = (_unique_knobs(s, profile) for s in (ancestor, a, b))
    names = kbase.keys() & ka.keys() & kb.keys()
    spelled = {name: literal(ancestor, kbase[name]) for name in names}
    plain_a = splice(a, [(ka[n], spelled[n]) for n in names])
    plain_b = splice(b, [(kb[n], spelled[n]) for n in names])
    text, conflicts = three_way(ancestor, plain_a, plain_b)
    if conflicts:
        return KnobMerge(text, conflicts, (), ())
    values = {side: {n: k[n].value for n in names} for side, k in (("a", ka), ("b", kb), ("base", kbase))}
    if prefer_b:
        merged, clashes = merge_values(values["base"], values["b"], values["a"])
    else:
        merged, clashes = merge_values(values["base"], values["a"], values["b"])
    edits, changes = [], []
    knobs_now = _unique_knobs(text, profile)
    for name in sorted(names & knobs_now.keys(), key=lambda n: (knobs_now[n].line, knobs_now[n].col)):
        if merged[name] == values["base"][name]:
            continue
        side = 0 if merged[name] == values["a"][name] else 1
        edits.append((knobs_now[name], literal((a, b)[side], (ka, kb)[side][name])))
        changes.append(f"{name} {render(values['base'][name])} -> {render(merged[name])} (from {labels[side]})")
    return KnobMerge(splice(text, edits), 0, tuple(changes), clashes)


def transplant_knobs(ancestor: str, best: str, donor: str, profile: str, label: str = "donor") -> KnobMerge:
    """`best` with the knob changes `donor` made since `ancestor` (`best` keeps a knob both changed); the
    donor's other code changes are left out. Raises SyntaxError if a source does not parse."""
    kbase, kbest, kdonor = (_unique_knobs(s, profile) for s in (ancestor, best, donor))
    names = sorted(kbase.keys() & kbest.keys() & kdonor.keys(), key=lambda n: (kbest[n].line, kbest[n].col))
    values = [{n: k[n].value for n in names} for k in (kbase, kbest, kdonor)]
    merged, clashes = merge_values(*values)
    taken = [n for n in names if merged[n] != values[1][n]]
    edits = [(kbest[n], literal(donor, kdonor[n])) for n in taken]
    changes = tuple(f"{n} {render(values[1][n])} -> {render(merged[n])} (from {label})" for n in taken)
    return KnobMerge(splice(best, edits), 0, changes, clashes)


def _unique_knobs(source: str, profile: str) -> dict[str, Knob]:
    """Knobs by name, leaving out a name assigned more than once (the text merge handles those)."""
    knobs = find_knobs(source, profile)
    counts = Counter(k.name for k in knobs)
    return {k.name: k for k in knobs if counts[k.name] == 1}
