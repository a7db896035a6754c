"""LLMClient: one streamed Anthropic Messages call with retries, a concurrency cap, a cost meter, a budget
and an outage pause.

Replies are streamed so that usage is never lost: the prompt's tokens arrive in the first event
(message_start), so a reply cut off by the timeout or a broken connection is still counted (its output
as the server last reported it, or at least one token per 4 characters received, whichever is more).

Retries are ours, not the SDK's (the SDK client is built with max_retries=0): 429, 529, other 5xx,
connection errors and cut-off streams are retried up to `max_retries` times, waiting what the server's
`retry-after` / `retry-after-ms` header asks (capped at MAX_WAIT_S) or else `retry_base_s * 2**n`.
When the retries run out on such an error the API is having an outage, not refusing us: the failure
is status 'outage', and no request is sent for as long as the server's last retry-after asked (at most
MAX_PAUSE_S), or else `outage_pause_s` (calls fail fast with 'outage'), so the caller's offline
operators can stand in; the first call after the pause probes the API again.

The budget is checked before each request, so requests already in flight when it is reached still
finish and are counted: the overshoot is at most `max_concurrency` replies.

The API key lives only in a private attribute: it is left out of repr, never logged, and dropped when
the client is pickled (an unpickled copy holds no key and answers 'api_error').
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anthropic
import httpx2

from mutators.config import MutatorConfig, cost_usd
from mutators.messages import LLMUsage, one_line

log = logging.getLogger(__name__)

MAX_WAIT_S = 120.0  # longest retry-after we honour before giving up waiting that long
MAX_PAUSE_S = 600.0  # longest pause after an outage, whatever the server asks
RETRYABLE = frozenset({408, 409, 429, 529})  # and every other 5xx
CHARS_PER_TOKEN = 4  # floor for the output of a cut-off stream: the API bills what it generated


class LLMFailure(Exception):
    """A request that produced no usable reply; `status` is a Proposal status, `usage` what it cost."""

    def __init__(self, status: str, reason: str, usage: LLMUsage | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.usage = usage


@dataclass(frozen=True)
class LLMReply:
    text: str
    stop_reason: str
    usage: LLMUsage  # every request this reply took, retried and cut-off ones included


class _CutOff(Exception):
    """A stream that ended before message_stop; `usage` is what it had reported."""

    def __init__(self, reason: str, usage: LLMUsage) -> None:
        super().__init__(reason)
        self.reason, self.usage = reason, usage


@dataclass
class _Events:
    """What a stream of Messages events has said so far."""

    text: list[str] = field(default_factory=list)
    stop_reason: str = ""
    tokens: dict[str, int] = field(default_factory=lambda: dict(input=0, cache_read=0, cache_write=0, output=0))
    started: bool = False
    stopped: bool = False

    def add(self, event) -> None:
        if event.type == "message_start":
            self.started = True
            self._usage(event.message.usage)
        elif event.type == "content_block_delta" and event.delta.type == "text_delta":
            self.text.append(event.delta.text)
        elif event.type == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            self._usage(event.usage)
        elif event.type == "message_stop":
            self.stopped = True

    def _usage(self, usage) -> None:
        for key, name in (("input", "input_tokens"), ("output", "output_tokens")):
            if getattr(usage, name, None) is not None:
                self.tokens[key] = getattr(usage, name)
        for key, name in (("cache_read", "cache_read_input_tokens"), ("cache_write", "cache_creation_input_tokens")):
            if getattr(usage, name, None) is not None:
                self.tokens[key] = getattr(usage, name)

    def billed(self) -> dict[str, int]:
        """Tokens to count; a stream cut off before its final usage counts its text at CHARS_PER_TOKEN."""
        if self.stopped:
            return dict(self.tokens)
        seen = math.ceil(sum(map(len, self.text)) / CHARS_PER_TOKEN)
        return self.tokens | {"output": max(self.tokens["output"], seen)}


class LLMClient:
    """Thread-safe: share one instance between the threads proposing children."""

    def __init__(
        self,
        config: MutatorConfig,
        api_key: str,
        base_url: str | None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config, self._api_key, self._base_url = config, api_key, base_url
        self._sleep, self._clock = sleep, clock
        self._setup()

    def _setup(self) -> None:
        self._sdk: anthropic.Anthropic | None = None
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self._config.max_concurrency)
        self._total = LLMUsage(self._config.model)
        self._paused_until = -math.inf

    def __repr__(self) -> str:
        return f"LLMClient(model={self._config.model!r}, base_url={self._base_url!r})"

    def __getstate__(self) -> dict:
        return {"config": self._config, "base_url": self._base_url, "total": self._total}

    def __setstate__(self, state: dict) -> None:
        self._config, self._base_url = state["config"], state["base_url"]
        self._api_key, self._sleep, self._clock = "", time.sleep, time.monotonic
        self._setup()
        self._total = state["total"]

    @property
    def total(self) -> LLMUsage:
        return self._total

    def budget_left(self) -> bool:
        spent = self._total.cost_usd
        return math.isnan(spent) or spent < self._config.max_cost_usd  # NaN: no price, so no dollar budget

    def paused_for(self) -> float:
        """Seconds until the API is tried again after an outage (0 when it is not paused)."""
        return max(0.0, self._paused_until - self._clock())

    def complete(self, system: list[dict], messages: list[dict]) -> LLMReply:
        """One reply; raises LLMFailure('budget' | 'outage' | 'api_error' | 'malformed', reason, usage)."""
        if not self.budget_left():
            raise LLMFailure("budget", f"budget exhausted: spent ${self._total.cost_usd:.2f}")
        if not self._api_key:
            raise LLMFailure("api_error", "this copy of the LLM client holds no API key (keys are never pickled)")
        if self.paused_for() > 0:
            raise LLMFailure("outage", f"the LLM API is paused for {self.paused_for():.0f} s after an outage")
        spent = LLMUsage(self._config.model)
        for retry in range(self._config.max_retries + 1):
            try:
                with self._slots:
                    reply = self._stream(system, messages)
                return dataclasses.replace(reply, usage=spent + reply.usage)
            except anthropic.APIStatusError as e:
                self._wait_or_raise(retry, e.status_code, e.response.headers, e.message, spent)
            except anthropic.APIConnectionError as e:
                self._wait_or_raise(retry, None, {}, str(e) or type(e).__name__, spent)
            except _CutOff as e:
                spent = spent + e.usage
                self._wait_or_raise(retry, None, {}, e.reason, spent)
        raise AssertionError("unreachable: the last retry raises")

    def _stream(self, system: list[dict], messages: list[dict]) -> LLMReply:
        events, deadline = _Events(), self._clock() + self._config.timeout_s
        try:
            stream = self._client().messages.create(
                model=self._config.model,
                max_tokens=self._config.max_tokens,
                system=system,
                messages=messages,
                stream=True,
            )
            with stream:
                for event in stream:
                    events.add(event)
                    if self._clock() > deadline:
                        raise _CutOff(f"no complete reply in {self._config.timeout_s:g} s", self._record(events))
        except httpx2.TransportError as e:  # a read timeout or a dropped connection in mid-stream
            raise _CutOff(f"the reply stream broke: {type(e).__name__}", self._record(events)) from None
        usage = self._record(events)
        if not events.started:
            raise LLMFailure("malformed", "the API answered with no message (not an event stream)", usage)
        if not events.stopped:
            raise _CutOff("the reply stream ended before message_stop", usage)
        return LLMReply(text="".join(events.text), stop_reason=events.stop_reason, usage=usage)

    def _client(self) -> anthropic.Anthropic:
        with self._lock:
            if self._sdk is None:
                self._sdk = anthropic.Anthropic(
                    api_key=self._api_key, base_url=self._base_url, max_retries=0, timeout=self._config.timeout_s
                )
            return self._sdk

    def _wait_or_raise(self, retry: int, status: int | None, headers, message: str, spent: LLMUsage) -> None:
        what = f"HTTP {status}" if status is not None else "connection error"
        retryable = status is None or status in RETRYABLE or status >= 500
        if not retryable:
            raise LLMFailure("api_error", self.redact(f"{what}: {one_line(message, 200)}"), spent)
        wait = _retry_after(headers)
        wait = self._config.retry_base_s * 2**retry if wait is None else wait
        if retry >= self._config.max_retries or wait > MAX_WAIT_S:
            asked = _retry_after(headers)  # the server says when to come back; else outage_pause_s
            pause = self._config.outage_pause_s if asked is None else min(asked, MAX_PAUSE_S)
            self._paused_until = self._clock() + pause
            detail = f"{what} after {retry + 1} tries: {one_line(message, 200)}"
            raise LLMFailure("outage", self.redact(detail), spent)
        log.info("%s from the LLM API; retrying in %.2f s (%d/%d)", what, wait, retry + 1, self._config.max_retries)
        self._sleep(wait)

    def _record(self, events: _Events) -> LLMUsage:
        tokens = events.billed()
        usage = LLMUsage(
            self._config.model,
            input_tokens=tokens["input"],
            output_tokens=tokens["output"],
            cost_usd=cost_usd(self._config.rates, tokens),
            cache_read_tokens=tokens["cache_read"],
            cache_write_tokens=tokens["cache_write"],
            requests=1,
        )
        with self._lock:
            self._total = self._total + usage
        return usage

    def redact(self, text: str) -> str:
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
