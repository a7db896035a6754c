"""The reply format the LLM answers in, parsed and applied to the parent's exact text.

A reply is a `DESCRIPTION: <one line>` line, then one or more blocks

    <<<<<<< SEARCH
    lines copied exactly from the file
    =======
    the lines that replace them
    >>>>>>> REPLACE

or, as a fallback, the whole new file in one ```python fence. Everything here is pure; problems
raise EditError with a message written to be sent back to the LLM as feedback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEARCH = re.compile(r"^<{5,9} ?SEARCH\s*$")
_DIVIDER = re.compile(r"^={5,9}\s*$")
_REPLACE = re.compile(r"^>{5,9} ?REPLACE\s*$")
_DESCRIPTION = re.compile(r"^\**DESCRIPTION\**:\**\s*(.+)$", re.IGNORECASE | re.MULTILINE)
_PYTHON_FENCE = re.compile(r"```(?:python|py)[ \t]*\n(.*?)\n```", re.DOTALL)


class EditError(ValueError):
    """The reply cannot be turned into a child; the message says why, for the LLM to fix."""


@dataclass(frozen=True)
class Edit:
    search: str
    replace: str


@dataclass(frozen=True)
class ParsedReply:
    description: str
    edits: tuple[Edit, ...] = ()
    full_source: str | None = None  # set only when the reply has no edit blocks


def parse_reply(text: str) -> ParsedReply:
    """Split a reply into its description and its edits (or full file)."""
    match = _DESCRIPTION.search(text)
    if match is None or not match.group(1).strip(" *"):
        raise EditError("the reply has no `DESCRIPTION: <one line>` line")
    description = match.group(1).strip(" *")
    edits = _parse_blocks(text.splitlines(keepends=True))
    if edits:
        return ParsedReply(description, edits=edits)
    fences = _PYTHON_FENCE.findall(text)
    if fences:
        return ParsedReply(description, full_source=max(fences, key=len).rstrip("\n") + "\n")
    raise EditError("the reply has no SEARCH/REPLACE blocks and no full file in a ```python fence")


def _parse_blocks(lines: list[str]) -> tuple[Edit, ...]:
    edits, i = [], 0
    while i < len(lines):
        if not _SEARCH.match(lines[i].rstrip("\n")):
            i += 1
            continue
        divider = _find(lines, i + 1, _DIVIDER, f"SEARCH block {len(edits) + 1} has no ======= line")
        end = _find(lines, divider + 1, _REPLACE, f"SEARCH block {len(edits) + 1} has no >>>>>>> REPLACE line")
        search, replace = "".join(lines[i + 1 : divider]), "".join(lines[divider + 1 : end])
        if not search.strip():
            raise EditError(f"SEARCH block {len(edits) + 1} is empty; quote the lines to replace")
        edits.append(Edit(_newline_terminated(search), _newline_terminated(replace)))
        i = end + 1
    return tuple(edits)


def _find(lines: list[str], start: int, marker: re.Pattern, missing: str) -> int:
    for j in range(start, len(lines)):
        if marker.match(lines[j].rstrip("\n")):
            return j
    raise EditError(missing)


def _newline_terminated(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


def apply_edits(source: str, edits: tuple[Edit, ...]) -> str:
    """Apply each edit in order to `source`; each SEARCH must match exactly one place."""
    for number, edit in enumerate(edits, start=1):
        source = _apply_one(source, edit, number)
    return source


def _apply_one(source: str, edit: Edit, number: int) -> str:
    count = source.count(edit.search)
    if count == 1:
        return source.replace(edit.search, edit.replace, 1)
    if count > 1:
        raise EditError(f"SEARCH block {number} matches {count} places; quote more surrounding lines")
    span = _loose_span(source, edit.search)
    if span is None:
        first = edit.search.splitlines()[0].strip()
        raise EditError(f"SEARCH block {number} does not match the file exactly (it starts {first[:80]!r})")
    start, end = span
    return source[:start] + edit.replace + source[end:]


def _loose_span(source: str, search: str) -> tuple[int, int] | None:
    """Where `search` matches ignoring trailing whitespace on each line, if exactly one place."""
    lines = source.splitlines(keepends=True)
    wanted = [line.rstrip() for line in search.splitlines()]
    stripped = [line.rstrip() for line in lines]
    starts = [i for i in range(len(lines) - len(wanted) + 1) if stripped[i : i + len(wanted)] == wanted]
    if len(starts) != 1:
        return None
    offset = sum(len(line) for line in lines[: starts[0]])
    return offset, offset + sum(len(line) for line in lines[starts[0] : starts[0] + len(wanted)])
