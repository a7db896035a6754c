"""Context: what the caller knows about the search, rendered into the text every LLM prompt carries."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Context:
    """Built by the orchestrator for each proposal; the notes are plain text and may be empty."""

    program: str  # the research program: the user's instructions (experiments/program.md by default)
    profile: str  # hardware profile the child will train under (h100, cpu, smoke): picks per-profile knobs
    parent_metrics: str = ""  # e.g. "val_bpb 1.234, 812 steps, 38.1M params, 290 s"
    log_tail: str = ""  # the last lines the parent printed
    lineage_notes: str = ""  # what the ancestors changed and what it did to val_bpb
    archive_digest: str = ""  # what worked and what failed across the archive


def render_context(context: Context) -> str:
    """The shared prompt sections, skipping those with nothing to say."""
    sections = [
        ("Profile", f"The child will train under the {context.profile!r} profile."),
        ("Parent's metrics", context.parent_metrics),
        ("Parent's log tail", _fenced(context.log_tail)),
        ("Lineage: what the ancestors changed and how val_bpb moved", context.lineage_notes),
        (
            "What has worked and failed across the archive (do not retry known failures)",
            context.archive_digest,
        ),
    ]
    return "\n\n".join(f"## {title}\n{body.strip()}" for title, body in sections if body.strip())


def _fenced(text: str) -> str:
    return f"```\n{text.strip()}\n```" if text.strip() else ""
