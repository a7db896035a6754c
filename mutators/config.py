"""MutatorConfig: every knob of the mutators package, parsed from CLI strings with one-line errors.

Any model id is accepted (the installed SDK lists today's in `anthropic.types.Model`). Its price comes
from `--price IN/OUT` or else from PRICES; a model with neither has its tokens counted and its cost
unknown (NaN), and then a dollar budget (`max_cost_usd`) is refused: it could not be kept.

The API key is deliberately not a field: it is read from the environment by `Mutators` and kept
out of every config, record and log line.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

FAMILIES = ("llm", "offline")
MODES = ("auto", "llm", "offline")

DEFAULT_MODEL = "claude-sonnet-5-5"  # the current Sonnet in anthropic 2.14's model list (Sonnet 5 is legacy)
# $ per million tokens (input, output), Anthropic's list prices (platform.claude.com model pages, read
# 2026-11-30): check them, or pass --price IN/OUT. Models the SDK marks deprecated are left out. Cache reads
# and writes are priced from the input price (the 5-minute cache).
PRICES: tuple[tuple[str, float, float], ...] = (
    ("claude-sonnet-5-5", 2.0, 10.0),
    ("claude-sonnet-5", 2.0, 10.0),
    ("claude-opus-5-5", 4.0, 20.0),
    ("claude-opus-5", 5.0, 25.0),
    ("claude-fable-5-1", 10.0, 50.0),
    ("claude-opus-4-6", 5.0, 25.0),
    ("claude-sonnet-4-6", 3.0, 15.0),
    ("claude-haiku-4-5", 1.0, 5.0),
)
CACHE_READ, CACHE_WRITE = 0.1, 1.25  # times the input price


class MutatorConfigError(ValueError):
    """A bad mutator setting; the message is one line quoting the bad value."""


@dataclass(frozen=True)
class MutatorConfig:
    # "auto" (LLM if a key is set, else offline), "llm", "offline", or a mix "llm:0.7,offline:0.3".
    mode: str = "auto"
    model: str = DEFAULT_MODEL
    # (IN, OUT) $ per million tokens for `model`; None: from PRICES, or unknown for a model not there
    price: tuple[float, float] | None = None
    max_tokens: int = 16000  # room for a full-file rewrite of the seed (~2.5k tokens) and then some
    base_url: str | None = None  # None: the SDK's default, or ANTHROPIC_BASE_URL when set
    max_attempts: int = 3  # replies per proposal; each bad reply is answered with feedback
    max_retries: int = 4  # retries of one request on 429, 529, 5xx and connection errors
    retry_base_s: float = 1.0  # backoff: base * 2**retry, unless the server sends retry-after
    timeout_s: float = 300.0  # one streamed reply, from request to its last event
    max_concurrency: int = 4  # parallel requests, shared by all threads using one Mutators
    max_cost_usd: float = math.inf  # no new LLM request once this much has been spent
    crossover_rate: float = 0.25  # share of proposals that combine two parents, when two exist
    # share of the offline family's proposals that bring another lineage's knob changes onto the best
    # (evolve strategy only); 0.25 from benchmarks.transplant_ablation (a small gain at 16 and 64 slots)
    transplant_rate: float = 0.25
    # after retries run out on 429/529/5xx, no LLM request for this long (the offline operators stand in)
    outage_pause_s: float = 60.0

    def __post_init__(self) -> None:
        self.family_weights()  # validates mode
        _check(self.max_tokens >= 1, "max_tokens", self.max_tokens, "must be >= 1")
        _check(self.model.strip() == self.model and self.model != "", "model", self.model, "must be a model id")
        _check(self.price is None or min(self.price) >= 0, "price", self.price, "must be >= 0")
        _check(self.max_attempts >= 1, "max_attempts", self.max_attempts, "must be >= 1")
        _check(self.max_retries >= 0, "max_retries", self.max_retries, "must be >= 0")
        _check(self.retry_base_s >= 0, "retry_base_s", self.retry_base_s, "must be >= 0")
        _check(self.timeout_s > 0, "timeout_s", self.timeout_s, "must be > 0")
        _check(self.max_concurrency >= 1, "max_concurrency", self.max_concurrency, "must be >= 1")
        _check(self.max_cost_usd >= 0, "max_cost_usd", self.max_cost_usd, "must be >= 0")
        _check(0.0 <= self.crossover_rate <= 1.0, "crossover_rate", self.crossover_rate, "must be in [0, 1]")
        _check(0.0 <= self.transplant_rate <= 1.0, "transplant_rate", self.transplant_rate, "must be in [0, 1]")
        _check(self.outage_pause_s >= 0, "outage_pause_s", self.outage_pause_s, "must be >= 0")
        if math.isfinite(self.max_cost_usd) and self.family_weights().get("llm", 0) > 0 and self.rates is None:
            raise MutatorConfigError(
                f"no price known for model {self.model!r}, so a dollar budget cannot be kept; add --price IN/OUT"
            )

    def family_weights(self) -> dict[str, float]:
        """Mode as weights over operator families; 'auto' is {'llm': 1} and falls back when keyless."""
        return parse_mode(self.mode)

    @property
    def rates(self) -> tuple[float, float] | None:
        """($/Mtok input, $/Mtok output) for the model: --price, else PRICES, else None (unknown)."""
        if self.price is not None:
            return self.price
        return next(((inp, out) for name, inp, out in PRICES if name == self.model), None)

    def resolved(self) -> dict:
        """Every setting as the run uses it (for run.json); the price as found, or None when unknown."""
        values = dataclasses.asdict(self)
        values["price"] = list(self.rates) if self.rates is not None else None
        values["max_cost_usd"] = self.max_cost_usd if math.isfinite(self.max_cost_usd) else None
        return values

    @classmethod
    def from_cli(cls, **values: str | None) -> MutatorConfig:
        """Build from CLI strings: from_cli(mode="llm:0.7,offline:0.3", max_cost_usd="5", price="3/15").

        Values that are None are left at their defaults.
        """
        given = {k: v for k, v in values.items() if v is not None}
        kwargs = {name: _convert(name, text) for name, text in given.items()}
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


def parse_price(text: str) -> tuple[float, float]:
    """'3/15' -> (3.0, 15.0): $ per million input and output tokens."""
    inp, _, out = text.partition("/")
    if not _is_float(inp) or not _is_float(out) or min(float(inp), float(out)) < 0:
        raise MutatorConfigError(f"bad price {text!r}: expected IN/OUT in $ per million tokens, e.g. 3/15")
    return float(inp), float(out)


_FIELD_TYPES = {
    "mode": str,
    "model": str,
    "base_url": str,
    "max_tokens": int,
    "max_attempts": int,
    "max_retries": int,
    "max_concurrency": int,
    "price": parse_price,
    "retry_base_s": float,
    "timeout_s": float,
    "max_cost_usd": float,
    "crossover_rate": float,
    "transplant_rate": float,
    "outage_pause_s": float,
}


def _convert(name: str, text: str) -> object:
    kind = _FIELD_TYPES.get(name)
    if kind is None:
        raise MutatorConfigError(f"unknown mutator setting {name!r}")
    try:
        return kind(text)
    except MutatorConfigError:
        raise
    except ValueError:
        raise MutatorConfigError(f"bad {name} {text!r}: expected {kind.__name__}") from None


def cost_usd(rates: tuple[float, float] | None, tokens: dict[str, int]) -> float:
    """Dollars for `tokens` (input, cache_read, cache_write, output); NaN when the price is unknown."""
    if rates is None:
        return math.nan
    inp, out = rates
    paid_input = tokens["input"] + CACHE_READ * tokens["cache_read"] + CACHE_WRITE * tokens["cache_write"]
    return (paid_input * inp + tokens["output"] * out) / 1e6


def _check(ok: bool, name: str, value: object, rule: str) -> None:
    if not ok:
        raise MutatorConfigError(f"bad {name} {value!r}: {rule}")


def _is_float(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
