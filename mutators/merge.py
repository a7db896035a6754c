"""Merge crossover: a 3-way merge of two parents against their common ancestor, no network.

Knobs merge by name and the rest of the code by text (mutators.knobmerge), so two parents that tuned
neighbouring knobs combine cleanly. A knob both parents changed differently takes the fitter parent's
value (lower val_bpb; the first parent when neither or both are unknown or equal). A textual conflict in
the non-knob code is reported as status 'conflict', for the caller to drop or to hand to the LLM crossover.

A transplant brings a donor's knob changes (since its common ancestor with the best) onto the best: a
one-parent child of the best (so git's merge bases stay true: the donor's code changes are not in it),
whose description names the donor.
"""

from __future__ import annotations

import logging

from mutators.accept import IsDuplicate, vet
from mutators.knobmerge import MergeError, knob_three_way, three_way, transplant_knobs
from mutators.messages import Draft, ParentInfo, Proposal, failed, one_line
from mutators.offline import consistent, find_knobs

__all__ = ["MergeError", "merge", "prefers_second", "rebase", "three_way", "transplant"]

log = logging.getLogger(__name__)


def prefers_second(a: ParentInfo, b: ParentInfo) -> bool:
    """True when `b` scored strictly lower than `a` (an unscored parent never wins a knob clash)."""
    return b.val_bpb is not None and (a.val_bpb is None or b.val_bpb < a.val_bpb)


def merge(
    a: ParentInfo, b: ParentInfo, ancestor: str | None, is_duplicate: IsDuplicate | None, profile: str
) -> Proposal:
    """The clean 3-way merge of `a` and `b`, or a failed Proposal saying why there is none."""
    if ancestor is None:
        return failed("conflict", "merge", "no common ancestor given")
    try:
        done = knob_three_way(ancestor, a.source, b.source, profile, (a.id, b.id), prefers_second(a, b))
    except MergeError as e:
        log.warning("%s", e)
        return failed("conflict", "merge", str(e))
    except SyntaxError as e:
        return failed("invalid", "merge", one_line(f"a parent or the merged text does not parse: {e}"))
    if done.conflicts:
        return failed("conflict", "merge", f"{done.conflicts} conflicting hunk(s) between {a.id} and {b.id}")
    verdict = _verdict(done.source, [a.source, b.source], is_duplicate, profile)
    if verdict is not None:
        return failed(verdict[0], "merge", verdict[1])
    kept = (b if prefers_second(a, b) else a).id
    clashes = tuple(f"{name}: both parents changed it; kept {kept}'s (the fitter)" for name in done.clashes)
    changes = (
        f"from {a.id}: {a.description or 'the seed'}",
        f"from {b.id}: {b.description or 'the seed'}",
        *done.changes,
        *clashes,
    )
    description = one_line(f"merge: {a.description or a.id} + {b.description or b.id}")
    return Proposal("ok", "merge", draft=Draft(done.source, description, "merge", (a.id, b.id), changes))


def transplant(
    best: ParentInfo, donor: ParentInfo, ancestor: str | None, is_duplicate: IsDuplicate | None, profile: str
) -> Proposal:
    """`best` plus the knob changes `donor` made since `ancestor`, or a failed Proposal saying why not."""
    if ancestor is None:
        return failed("conflict", "transplant", "no common ancestor given")
    try:
        done = transplant_knobs(ancestor, best.source, donor.source, profile, donor.id)
    except SyntaxError as e:
        return failed("invalid", "transplant", one_line(f"a parent does not parse: {e}"))
    if not done.changes:
        return failed("unchanged", "transplant", f"{donor.id} changed no knob that {best.id} has not")
    verdict = _verdict(done.source, [best.source], is_duplicate, profile)
    if verdict is not None:
        return failed(verdict[0], "transplant", verdict[1])
    description = one_line(f"transplant from {donor.id[:7]}: {', '.join(c.split(' (from')[0] for c in done.changes)}")
    return Proposal("ok", "transplant", draft=Draft(done.source, description, "transplant", (best.id,), done.changes))


def rebase(
    child: ParentInfo, onto: ParentInfo, parent: str, is_duplicate: IsDuplicate | None, profile: str
) -> Proposal:
    """`child`'s changes against its parent (source `parent`) applied to `onto` by a 3-way merge; where both
    changed a knob the child's value wins (its idea is what is being tried). A failed Proposal says why not."""
    try:
        done = knob_three_way(parent, onto.source, child.source, profile, (onto.id, child.id), prefer_b=True)
    except MergeError as e:
        return failed("conflict", "rebase", str(e))
    except SyntaxError as e:
        return failed("invalid", "rebase", one_line(f"a genome or the merged text does not parse: {e}"))
    if done.conflicts:
        return failed("conflict", "rebase", f"{done.conflicts} conflicting hunk(s) between {onto.id} and {child.id}")
    verdict = _verdict(done.source, [onto.source, child.source], is_duplicate, profile)
    if verdict is not None:
        return failed(verdict[0], "rebase", verdict[1])
    description = one_line(f"{child.description} (rebased onto {onto.id[:7]})")
    changes = (f"{child.id[:7]}'s changes rebased onto {onto.id[:7]}, the new best", *done.changes)
    return Proposal("ok", "rebase", draft=Draft(done.source, description, "rebase", (onto.id, child.id), changes))


def _verdict(source: str, parents: list[str], is_duplicate: IsDuplicate | None, profile: str) -> tuple[str, str] | None:
    """accept.vet, after the knob values' consistency rule (mutators.offline.consistent)."""
    problem = consistent({k.base_name: k.value for k in find_knobs(source, profile)})
    return ("invalid", problem) if problem else vet(source, parents, is_duplicate)
