"""MutatorConfig: every knob of the mutators package, parsed from CLI strings with one-line errors.

The API key is deliberately not a field: it is read from the environment by `Mutators` and kept
out of every config, record and log line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

FAMILIES = ("llm", "offline")
MODES = ("auto", "llm", "offline")

# $ per million tokens (input, output), as published when this was written: check them, and override
# or extend with --price MODEL=IN/OUT (a model without a price cannot be budgeted, so it is refused).
DEFAULT_PRICES: tuple[tuple[str, float, float], ...] = (
    ("claude-opus-4-6", 5.0, 25.0),
    ("claude-opus-4-5", 5.0, 25.0),
    ("claude-sonnet-4-6", 3.0, 15.0),
    ("claude-sonnet-4-5", 3.0, 15.0),
    ("claude-haiku-4-5", 1.0, 5.0),
)


class MutatorConfigError(ValueError):
    """A bad mutator setting; the message is one line quoting the bad value."""


@dataclass(frozen=True)
class MutatorConfig:
    # "auto" (LLM if a key is set, else offline), "llm", "offline", or a mix "llm:0.7,offline:0.3".
    mode: str = "auto"
    model: str = "claude-sonnet-4-6"
    max_tokens: int = 16000  # room for a full-file rewrite of the seed (~2.5k tokens) and then some
    # None: the model's default. The SDK no longer takes temperature, so a value is sent as an extra
    # body field; models that reject it answer HTTP 400 (status api_error).
    temperature: float | None = None
    base_url: str | None = None  # None: the SDK's default, or ANTHROPIC_BASE_URL when set
    max_attempts: int = 3  # replies per proposal; each bad reply is answered with feedback
    max_retries: int = 4  # retries of one request on 429, 529, 5xx and connection errors
    retry_base_s: float = 1.0  # backoff: base * 2**retry, unless the server sends retry-after
    timeout_s: float = 300.0  # one HTTP request
    max_concurrency: int = 4  # parallel requests, shared by all threads using one Mutators
    max_cost_usd: float = math.inf  # no new LLM request once this much has been spent
    crossover_rate: float = 0.25  # share of proposals that combine two parents, when two exist
    prices: tuple[tuple[str, float, float], ...] = field(default=DEFAULT_PRICES)

    def __post_init__(self) -> None:
        self.family_weights()  # validates mode
        _check(self.max_tokens >= 1, "max_tokens", self.max_tokens, "must be >= 1")
        _check(
            self.temperature is None or 0 <= self.temperature <= 1, "temperature", self.temperature, "must be in [0, 1]"
        )
        _check(self.max_attempts >= 1, "max_attempts", self.max_attempts, "must be >= 1")
        _check(self.max_retries >= 0, "max_retries", self.max_retries, "must be >= 0")
        _check(self.retry_base_s >= 0, "retry_base_s", self.retry_base_s, "must be >= 0")
        _check(self.timeout_s > 0, "timeout_s", self.timeout_s, "must be > 0")
        _check(self.max_concurrency >= 1, "max_concurrency", self.max_concurrency, "must be >= 1")
        _check(self.max_cost_usd >= 0, "max_cost_usd", self.max_cost_usd, "must be >= 0")
        _check(0.0 <= self.crossover_rate <= 1.0, "crossover_rate", self.crossover_rate, "must be in [0, 1]")
        if self.family_weights().get("llm", 0) > 0 and self.price_of(self.model) is None:
            raise MutatorConfigError(f"no price for model {self.model!r}; add --price {self.model}=IN/OUT")

    def family_weights(self) -> dict[str, float]:
        """Mode as weights over operator families; 'auto' is {'llm': 1} and falls back when keyless."""
        return parse_mode(self.mode)

    def price_of(self, model: str) -> tuple[float, float] | None:
        """($/Mtok input, $/Mtok output) for `model`, the last matching entry winning."""
        found = [(inp, out) for name, inp, out in self.prices if name == model]
        return found[-1] if found else None

    @classmethod
    def from_cli(cls, **values: str | None) -> MutatorConfig:
        """Build from CLI strings: from_cli(mode="llm:0.7,offline:0.3", max_cost_usd="5", price="m=3/15").

        `price` may hold several comma-separated MODEL=IN/OUT entries; they extend the default table.
        Values that are None are left at their defaults.
        """
        given = {k: v for k, v in values.items() if v is not None}
        prices = given.pop("price", None)
        kwargs: dict = {}
        for name, text in given.items():
            kwargs[name] = _convert(name, text)
        if prices is not None:
            kwargs["prices"] = DEFAULT_PRICES + parse_prices(prices)
        return cls(**kwargs)


def parse_mode(text: str) -> dict[str, float]:
    """'auto' | 'llm' | 'offline' | 'llm:0.7,offline:0.3' -> weights over families (summing to 1)."""
    if text in MODES:
        return {"llm": 1.0} if text == "auto" else {text: 1.0}
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight = part.partition(":")
        if name.strip() not in FAMILIES or not _is_float(weight) or float(weight) < 0:
            raise MutatorConfigError(f"bad mode {text!r}: expected auto, llm, offline or e.g. 'llm:0.7,offline:0.3'")
        weights[name.strip()] = float(weight)
    total = sum(weights.values())
    if total <= 0:
        raise MutatorConfigError(f"bad mode {text!r}: weights sum to zero")
    return {name: w / total for name, w in weights.items() if w > 0}


def parse_prices(text: str) -> tuple[tuple[str, float, float], ...]:
    """'model-a=3/15,model-b=1/5' -> (('model-a', 3.0, 15.0), ...)."""
    entries = []
    for part in text.split(","):
        name, _, rates = part.partition("=")
        inp, _, out = rates.partition("/")
        if not name.strip() or not _is_float(inp) or not _is_float(out) or min(float(inp), float(out)) < 0:
            raise MutatorConfigError(f"bad price {part!r}: expected MODEL=IN/OUT in $ per million tokens")
        entries.append((name.strip(), float(inp), float(out)))
    return tuple(entries)


_FIELD_TYPES = {
    "mode": str,
    "model": str,
    "base_url": str,
    "max_tokens": int,
    "max_attempts": int,
    "max_retries": int,
    "max_concurrency": int,
    "temperature": float,
    "retry_base_s": float,
    "timeout_s": float,
    "max_cost_usd": float,
    "crossover_rate": float,
}


def _convert(name: str, text: str) -> str | int | float:
    kind = _FIELD_TYPES.get(name)
    if kind is None:
        raise MutatorConfigError(f"unknown mutator setting {name!r}")
    try:
        return kind(text)
    except ValueError:
        raise MutatorConfigError(f"bad {name} {text!r}: expected {kind.__name__}") from None


def _check(ok: bool, name: str, value: object, rule: str) -> None:
    if not ok:
        raise MutatorConfigError(f"bad {name} {value!r}: {rule}")


def _is_float(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
