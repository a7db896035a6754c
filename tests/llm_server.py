"""A fake Anthropic Messages API on loopback, for testing the LLM mutators through the real SDK.

`FakeAnthropic` serves `POST /v1/messages` from a script of canned replies (one per request, in
order) and records every request it receives (path, headers, JSON body) so tests can assert on
what the client sent. It binds 127.0.0.1 on a free port and never touches the network.

A request with `"stream": true` gets a message reply as server-sent events, as the API sends them
(message_start with the prompt's usage, content_block_start/delta/stop, message_delta with the
output usage, message_stop); `cut_after` events into it, the reply stalls for `stall_s` and closes.
`PromptCache` plays the API's prompt cache: a prefix up to a `cache_control` mark is read from the
cache when an earlier request sent the same prefix, else written (tokens counted as characters / 4).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP response."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0
    message: dict | None = None  # a successful message, sent as SSE events to a streaming request
    cut_after: int | None = None  # stream only this many events, then stall and close
    stall_s: float = 0.0


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    body: dict


def text_reply(
    text: str,
    stop_reason: str = "end_turn",
    input_tokens: int = 1000,
    output_tokens: int = 200,
    cache_read: int = 0,
    cache_write: int = 0,
    **kw,
) -> Reply:
    """A successful Messages API reply whose single content block is `text`."""
    message = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": "claude-fake",
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_input_tokens": cache_read,
            "cache_creation_input_tokens": cache_write,
        },
    }
    return Reply(body=json.dumps(message).encode(), message=message, **kw)


def sse_events(message: dict) -> list[tuple[str, dict]]:
    """`message` as the Messages API streams it: (event name, data) pairs."""
    usage = message["usage"]
    start = dict(message, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))
    events = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": dict(block, text="")},
            )
        )
        text = block["text"]
        for piece in (text[i : i + 400] for i in range(0, len(text), 400)):
            delta = {"type": "text_delta", "text": piece}
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    end = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events.append(
        ("message_delta", {"type": "message_delta", "delta": end, "usage": {"output_tokens": usage["output_tokens"]}})
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


class PromptCache:
    """The API's prompt cache, played on loopback: usage for a request body, from the prefixes seen before."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def usage(self, body: dict) -> dict[str, int]:
        blocks = [*_blocks(body.get("system", ""))]
        for message in body["messages"]:
            blocks += _blocks(message["content"])
        usage, prefix, counted = dict(input_tokens=0, cache_read_input_tokens=0, cache_creation_input_tokens=0), "", 0
        with self._lock:
            for block in blocks:
                prefix += block.get("text", "")
                if block.get("cache_control"):
                    kind = "cache_read_input_tokens" if prefix in self._seen else "cache_creation_input_tokens"
                    usage[kind] += _tokens(prefix) - counted
                    counted = _tokens(prefix)
                    self._seen.add(prefix)
        usage["input_tokens"] = _tokens(prefix) - counted
        return usage


def _blocks(content) -> list[dict]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _tokens(text: str) -> int:
    return len(text) // 4


def error_reply(status: int, kind: str, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    """An API error in Anthropic's JSON error shape."""
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return Reply(status=status, body=json.dumps(body).encode(), headers=headers)


def raw_reply(body: str, status: int = 200, content_type: str = "application/json") -> Reply:
    """Any body at all: broken JSON, an HTML page from a proxy."""
    return Reply(status=status, body=body.encode(), content_type=content_type)


@dataclass
class FakeAnthropic:
    """Context manager: `with FakeAnthropic([replies...]) as server: server.base_url`."""

    script: list[Reply] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        self._queue: deque[Reply] = deque(self.script)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def __enter__(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            if self._queue:
                return self._queue.popleft()
        return error_reply(500, "api_error", "fake server: script exhausted")

    def _done(self) -> None:
        with self._lock:
            self._in_flight -= 1


def _handler_for(server: FakeAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            raw = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            body = json.loads(raw or b"{}")
            reply = server._next(Recorded(self.path, headers, body))
            try:
                time.sleep(reply.delay_s)
                if body.get("stream") and reply.message is not None and reply.status == 200:
                    self._stream(reply)
                    return
                self.send_response(reply.status)
                self.send_header("content-type", reply.content_type)
                self.send_header("content-length", str(len(reply.body)))
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)
            finally:
                server._done()

        def _stream(self, reply: Reply) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("connection", "close")
            self.end_headers()
            events = sse_events(reply.message)
            for name, data in events[: reply.cut_after]:
                self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
            if reply.cut_after is not None:
                time.sleep(reply.stall_s)
            self.close_connection = True

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

    return Handler


class KnobResearcher(FakeAnthropic):
    """A loopback researcher for smoke runs: each reply nudges one UPPER_CASE numeric knob of the script it
    was shown (the n-th request takes the n-th knob, up 10% on odd requests and down on even ones), with
    usage from a PromptCache. `python tests/llm_server.py` serves it until interrupted."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.cache = PromptCache()

    def _next(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            n = len(self.requests)
        usage = self.cache.usage(recorded.body)
        script = recorded.body["messages"][0]["content"][0]["text"]
        knobs = KNOB_LINE.findall(script)
        name, value, comment = knobs[n % len(knobs)]
        new = f"{float(value) * (1.1 if n % 2 else 0.9):.4g}"
        if "." not in new and "e" not in new and "." in value:
            new += ".0"
        text = (
            f"DESCRIPTION: {name} {value} -> {new}\n\n<<<<<<< SEARCH\n{name} = {value}{comment}\n=======\n"
            f"{name} = {new}{comment}\n>>>>>>> REPLACE\n"
        )
        return text_reply(
            text,
            input_tokens=usage["input_tokens"],
            cache_read=usage["cache_read_input_tokens"],
            cache_write=usage["cache_creation_input_tokens"],
        )

    def _done(self) -> None:
        pass


KNOB_LINE = re.compile(r"^([A-Z][A-Z0-9_]*) = ([0-9]+\.[0-9]*(?:e-?[0-9]+)?)(  #.*)$", re.MULTILINE)


if __name__ == "__main__":
    with KnobResearcher() as server:
        print(server.base_url, flush=True)
        threading.Event().wait()
