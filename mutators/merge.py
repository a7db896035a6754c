"""Merge crossover: a 3-way text merge of two parents against their common ancestor, no network.

The merge itself is `git merge-file`, run on temporary files (git needs no repository for it).
A clean merge is a child; a conflicted one is reported as status 'conflict', for the caller to
drop or to hand to the LLM crossover.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
from pathlib import Path

from mutators.accept import IsDuplicate, vet
from mutators.messages import Draft, ParentInfo, Proposal, failed, one_line

log = logging.getLogger(__name__)


class MergeError(RuntimeError):
    """git merge-file itself failed (not a conflict): git missing or unusable."""


def three_way(ancestor: str, a: str, b: str) -> tuple[str, int]:
    """(merged text, number of conflicts); conflicts leave markers in the text."""
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


def merge(a: ParentInfo, b: ParentInfo, ancestor: str | None, is_duplicate: IsDuplicate | None) -> Proposal:
    """The clean 3-way merge of `a` and `b`, or a failed Proposal saying why there is none."""
    if ancestor is None:
        return failed("conflict", "merge", "no common ancestor given")
    try:
        source, conflicts = three_way(ancestor, a.source, b.source)
    except MergeError as e:
        log.warning("%s", e)
        return failed("conflict", "merge", str(e))
    if conflicts:
        return failed("conflict", "merge", f"{conflicts} conflicting hunk(s) between {a.id} and {b.id}")
    verdict = vet(source, [a.source, b.source], is_duplicate)
    if verdict is not None:
        return failed(verdict[0], "merge", verdict[1])
    changes = (f"from {a.id}: {a.description or 'the seed'}", f"from {b.id}: {b.description or 'the seed'}")
    description = one_line(f"merge: {a.description or a.id} + {b.description or b.id}")
    return Proposal("ok", "merge", draft=Draft(source, description, "merge", (a.id, b.id), changes))
