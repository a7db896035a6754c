"""LLMClient: one Anthropic Messages call with retries, a concurrency cap, a cost meter and a budget.

Retries are ours, not the SDK's (the SDK client is built with max_retries=0): 429, 529, other 5xx
and connection errors are retried up to `max_retries` times, waiting what the server's
`retry-after` / `retry-after-ms` header asks (capped at MAX_WAIT_S) or else `retry_base_s * 2**n`.
Owning the loop lets tests use tiny backoffs and lets waiting requests give up their concurrency slot.

The budget is checked before each request, so requests already in flight when it is reached still
finish and are counted: the overshoot is at most `max_concurrency` replies.

The API key lives only in a private attribute: it is left out of repr, never logged, and dropped
when the client is pickled (the unpickled copy reads ANTHROPIC_API_KEY from its own environment).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import anthropic
from anthropic.types import Message

from mutators.config import MutatorConfig
from mutators.messages import LLMUsage, one_line

log = logging.getLogger(__name__)

MAX_WAIT_S = 120.0  # longest retry-after we honour before giving up waiting that long
RETRYABLE = frozenset({408, 409, 429, 529})  # and every other 5xx


class LLMFailure(Exception):
    """A request that produced no usable reply; `status` is a Proposal status."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class LLMReply:
    text: str
    stop_reason: str
    usage: LLMUsage


class LLMClient:
    """Thread-safe: share one instance between the threads proposing children."""

    def __init__(self, config: MutatorConfig, api_key: str, sleep: Callable[[float], None] = time.sleep) -> None:
        self._config = config
        self._api_key = api_key
        self._sleep = sleep
        self._setup()

    def _setup(self) -> None:
        self._sdk: anthropic.Anthropic | None = None
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self._config.max_concurrency)
        self._total = LLMUsage(self._config.model)

    def __repr__(self) -> str:
        return f"LLMClient(model={self._config.model!r}, base_url={self._config.base_url!r})"

    def __getstate__(self) -> dict:
        return {"config": self._config, "sleep": self._sleep, "total": self._total}

    def __setstate__(self, state: dict) -> None:
        self._config, self._sleep = state["config"], state["sleep"]
        self._api_key = os.environ.get("ANTHROPIC_API_KEY", "")
        self._setup()
        self._total = state["total"]

    @property
    def total(self) -> LLMUsage:
        return self._total

    def budget_left(self) -> bool:
        return self._total.cost_usd < self._config.max_cost_usd

    def complete(self, system: str, messages: list[dict]) -> LLMReply:
        """One reply to `messages`; raises LLMFailure('budget' | 'api_error' | 'malformed', reason)."""
        if not self.budget_left():
            raise LLMFailure("budget", f"budget exhausted: spent ${self._total.cost_usd:.2f}")
        for retry in range(self._config.max_retries + 1):
            try:
                with self._slots:
                    result = self._client().messages.create(
                        model=self._config.model,
                        max_tokens=self._config.max_tokens,
                        system=system,
                        messages=messages,
                        extra_body=self._extra_body(),
                    )
                return self._reply(result)
            except anthropic.APIStatusError as e:
                self._wait_or_raise(retry, e.status_code, e.response.headers, e.message)
            except anthropic.APIConnectionError as e:
                self._wait_or_raise(retry, None, {}, str(e))
            except json.JSONDecodeError:
                raise LLMFailure("malformed", "the API answered with a body that is not valid JSON") from None
        raise AssertionError("unreachable: the last retry raises")

    def _extra_body(self) -> dict | None:
        temperature = self._config.temperature
        return None if temperature is None else {"temperature": temperature}

    def _client(self) -> anthropic.Anthropic:
        with self._lock:
            if self._sdk is None:
                self._sdk = anthropic.Anthropic(
                    api_key=self._api_key,
                    base_url=self._config.base_url,
                    max_retries=0,
                    timeout=self._config.timeout_s,
                )
            return self._sdk

    def _wait_or_raise(self, retry: int, status: int | None, headers, message: str) -> None:
        what = f"HTTP {status}" if status is not None else "connection error"
        retryable = status is None or status in RETRYABLE or status >= 500
        if not retryable or retry >= self._config.max_retries:
            tries = f" after {retry + 1} tries" if retryable else ""
            raise LLMFailure("api_error", self._scrub(f"{what}{tries}: {one_line(message, 200)}"))
        wait = _retry_after(headers)
        if wait is None:
            wait = self._config.retry_base_s * 2**retry
        if wait > MAX_WAIT_S:
            raise LLMFailure("api_error", f"{what}: server asks to retry after {wait:.0f} s")
        log.info("%s from the LLM API; retrying in %.2f s (%d/%d)", what, wait, retry + 1, self._config.max_retries)
        self._sleep(wait)

    def _reply(self, result: object) -> LLMReply:
        if not isinstance(result, Message):
            raise LLMFailure("malformed", f"the API answered with a non-JSON body: {one_line(str(result), 80)!r}")
        if result.type != "message" or result.content is None:
            detail = one_line(str(result.model_dump().get("error") or result.type), 120)
            raise LLMFailure("malformed", f"the API answered with an error body: {detail}")
        usage = self._record(
            result.usage.input_tokens if result.usage else 0,
            result.usage.output_tokens if result.usage else 0,
        )
        text = "".join(block.text for block in result.content if block.type == "text")
        return LLMReply(text=text, stop_reason=result.stop_reason or "", usage=usage)

    def _record(self, input_tokens: int, output_tokens: int) -> LLMUsage:
        inp, out = self._config.price_of(self._config.model) or (0.0, 0.0)
        cost = (input_tokens * inp + output_tokens * out) / 1e6
        usage = LLMUsage(self._config.model, input_tokens, output_tokens, cost)
        with self._lock:
            self._total = self._total + usage
        return usage

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "[key]") if self._api_key else text


def _retry_after(headers) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms or retry-after), if it said."""
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue  # an HTTP date: fall back to our own backoff
    return None
