"""Prompt text for the LLM operators, filled from the templates in mutators/prompts/*.txt.

Templates use `$name` placeholders (string.Template), so the Python code and braces they carry
need no escaping.
"""

from __future__ import annotations

import difflib
import functools
from importlib import resources
from string import Template

from mutators.context import Context, render_context
from mutators.messages import ParentInfo

MAX_ERROR_CHARS = 6000  # the end of a crash log is where the traceback is


@functools.cache
def template(name: str) -> Template:
    return Template(resources.files("mutators").joinpath("prompts", f"{name}.txt").read_text())


def system_prompt(program: str) -> str:
    return template("system").substitute(program=program.strip())


def mutate_prompt(parent: ParentInfo, context: Context) -> str:
    return template("mutate").substitute(
        context=render_context(context),
        parent_description=parent.description or "(the seed)",
        parent_source=parent.source.rstrip("\n"),
    )


def crossover_prompt(a: ParentInfo, b: ParentInfo, ancestor: str | None, context: Context) -> str:
    """Parent A's full text plus what each parent changed from the ancestor (or B against A)."""
    base = ancestor if ancestor is not None else a.source
    return template("crossover").substitute(
        context=render_context(context),
        a_summary=summary(a),
        b_summary=summary(b),
        a_diff=unified_diff(base, a.source) or "(no changes: parent A is the ancestor)",
        b_diff=unified_diff(base, b.source) or "(no changes)",
        a_source=a.source.rstrip("\n"),
    )


def repair_prompt(child: ParentInfo, error_tail: str, context: Context) -> str:
    return template("repair").substitute(
        context=render_context(context),
        child_description=child.description or "(none given)",
        error_tail=error_tail.strip()[-MAX_ERROR_CHARS:],
        child_source=child.source.rstrip("\n"),
    )


def feedback(problem: str) -> str:
    return template("feedback").substitute(problem=problem)


def summary(parent: ParentInfo) -> str:
    score = f"val_bpb {parent.val_bpb:.4f}" if parent.val_bpb is not None else "not scored"
    return f"{parent.description or 'the seed'} ({score})"


def unified_diff(old: str, new: str) -> str:
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), "ancestor", "parent", n=2, lineterm="")
    return "\n".join(lines)
