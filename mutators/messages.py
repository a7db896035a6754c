"""The messages that cross the mutators boundary: parents and context in, a Proposal out."""

from __future__ import annotations

import math
from dataclasses import dataclass

OPERATORS = ("mutate", "crossover", "repair", "hyperparam", "merge", "transplant", "rebase")
LLM_OPERATORS = ("mutate", "crossover", "repair")
OFFLINE_OPERATORS = ("hyperparam", "merge", "transplant")
# ok: a draft was produced. malformed: the LLM never answered with usable edits. duplicate: the only
# children found were already known. unchanged: identical to a parent. invalid: does not parse or
# breaks the harness contract. conflict: a 3-way merge conflicted. budget: max_cost_usd reached.
# api_error: the API refused the request (auth, bad request). outage: the API is overloaded or
# unreachable (429/529/5xx/connection errors/timeouts past the retries, or paused after such an
# outage); the caller may stand in an offline operator. unavailable: an LLM operator was asked for
# while the LLM is off (offline mode or no API key).
STATUSES = (
    "ok",
    "malformed",
    "duplicate",
    "unchanged",
    "invalid",
    "conflict",
    "budget",
    "api_error",
    "outage",
    "unavailable",
)


@dataclass(frozen=True)
class ParentInfo:
    """A genome offered as a parent; `id` is the caller's (e.g. a git commit) and passed through."""

    id: str
    source: str
    description: str = ""
    val_bpb: float | None = None


@dataclass(frozen=True)
class LLMUsage:
    """Tokens and dollars spent on one proposal, failed attempts and cut-off replies included.

    `input_tokens` are the uncached ones; `cache_read_tokens` and `cache_write_tokens` come on top
    (the prompt's size is the sum of the three). `cost_usd` is NaN when the model's price is unknown.
    """

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    requests: int = 0

    def __add__(self, other: LLMUsage) -> LLMUsage:
        return LLMUsage(
            self.model,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cost_usd + other.cost_usd,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.requests + other.requests,
        )

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    def record(self) -> dict:
        """The archive's llm fields (population.LLMSpend's): input_tokens counts the whole prompt, cached parts
        included; an unknown cost is left out (the archive then holds 0, and run.json's llm.price is null)."""
        fields = dict(model=self.model, input_tokens=self.prompt_tokens, output_tokens=self.output_tokens)
        return fields | ({"cost_usd": self.cost_usd} if math.isfinite(self.cost_usd) else {})


@dataclass(frozen=True)
class Draft:
    """A child genome not yet committed: new train.py source and what it tries."""

    source: str
    description: str  # one line
    operator: str  # one of OPERATORS
    parent_ids: tuple[str, ...]
    changes: tuple[str, ...] = ()  # what changed, one short line each
    usage: LLMUsage | None = None  # None for offline operators

    def __post_init__(self) -> None:
        assert self.operator in OPERATORS, self.operator
        assert "\n" not in self.description, self.description


@dataclass(frozen=True)
class Proposal:
    """What every operator returns: a draft (status 'ok') or a failure with a one-line reason."""

    status: str
    operator: str
    draft: Draft | None = None
    reason: str = ""
    usage: LLMUsage | None = None  # counted even when the proposal failed
    # the LLM conversation: {"role", "content"} messages sent, then the replies; () for offline operators
    transcript: tuple[dict, ...] = ()

    def __post_init__(self) -> None:
        assert self.status in STATUSES, self.status
        assert (self.status == "ok") == (self.draft is not None), (self.status, self.draft)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def failed(
    status: str, operator: str, reason: str, usage: LLMUsage | None = None, transcript: tuple[dict, ...] = ()
) -> Proposal:
    return Proposal(status=status, operator=operator, reason=one_line(reason), usage=usage, transcript=transcript)


def one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace to a single line and cut it to `limit` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
