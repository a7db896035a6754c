"""Prompt text for the LLM operators, filled from the templates in mutators/prompts/*.txt.

Templates use `$name` placeholders (string.Template), so the Python code and braces they carry
need no escaping. Each prompt is laid out for the API's prompt cache: the system prompt (with the
research program) and then the script the edits apply to form a prefix that repeats across
proposals of the same parent; both end with a `cache_control` mark. What changes from one proposal
to the next (the task and the context) comes after.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from dataclasses import dataclass
from importlib import resources
from string import Template

from mutators.context import Context, cap, fence, render_context
from mutators.messages import ParentInfo

MAX_ERROR_CHARS = 4000  # the end of a crash log is where the traceback is
CACHED = {"type": "ephemeral"}


@dataclass(frozen=True)
class Prompt:
    """The first user message: `stable` (the script, cached) then `task` (instructions and context)."""

    stable: str
    task: str

    def content(self) -> list[dict]:
        return [
            {"type": "text", "text": self.stable, "cache_control": CACHED},
            {"type": "text", "text": self.task},
        ]


@functools.cache
def template(name: str) -> Template:
    return Template(resources.files("mutators").joinpath("prompts", f"{name}.txt").read_text())


def system_blocks(program: str) -> list[dict]:
    text = template("system").substitute(program=program.strip())
    return [{"type": "text", "text": text, "cache_control": CACHED}]


def source_block(title: str, source: str) -> str:
    return f"## {title} (your edits apply to this exact text)\n{fence(source.rstrip(chr(10)), 'python')}"


def mutate_prompt(parent: ParentInfo, context: Context) -> Prompt:
    task = template("mutate").substitute(
        context=render_context(context), parent_description=parent.description or "(the seed)"
    )
    return Prompt(source_block("The parent train.py", parent.source), task)


def crossover_prompt(a: ParentInfo, b: ParentInfo, ancestor: str | None, context: Context) -> Prompt:
    """Parent A's full text plus what each parent changed from the ancestor (or B against A)."""
    base = ancestor if ancestor is not None else a.source
    task = template("crossover").substitute(
        context=render_context(context),
        a_summary=summary(a),
        b_summary=summary(b),
        a_diff=fence(unified_diff(base, a.source), "diff") or "(no changes: parent A is the ancestor)",
        b_diff=fence(unified_diff(base, b.source), "diff") or "(no changes)",
    )
    return Prompt(source_block("Parent A's train.py", a.source), task)


def repair_prompt(child: ParentInfo, error_tail: str, context: Context) -> Prompt:
    """The crash log is given here once; the context's own log tail (the same log) is left out."""
    task = template("repair").substitute(
        context=render_context(dataclasses.replace(context, log_tail="")),
        child_description=child.description or "(none given)",
        error_tail=fence(cap(error_tail, MAX_ERROR_CHARS)) or "(no output)",
    )
    return Prompt(source_block("The broken train.py", child.source), task)


def feedback(problem: str) -> str:
    return template("feedback").substitute(problem=problem)


def summary(parent: ParentInfo) -> str:
    score = f"val_bpb {parent.val_bpb:.4f}" if parent.val_bpb is not None else "not scored"
    return f"{parent.description or 'the seed'} ({score})"


def unified_diff(old: str, new: str, names: tuple[str, str] = ("ancestor", "parent")) -> str:
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), *names, n=2, lineterm="")
    return "\n".join(lines)
