"""A fake Anthropic Messages API on loopback, for testing the LLM mutators through the real SDK.

`FakeAnthropic` serves `POST /v1/messages` from a script of canned replies (one per request, in
order) and records every request it receives (path, headers, JSON body) so tests can assert on
what the client sent. It binds 127.0.0.1 on a free port and never touches the network.
"""

from __future__ import annotations

import json
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


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    body: dict


def text_reply(
    text: str, stop_reason: str = "end_turn", input_tokens: int = 1000, output_tokens: int = 200, **kw
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
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }
    return Reply(body=json.dumps(message).encode(), **kw)


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
            reply = server._next(Recorded(self.path, headers, json.loads(raw or b"{}")))
            try:
                time.sleep(reply.delay_s)
                self.send_response(reply.status)
                self.send_header("content-type", reply.content_type)
                self.send_header("content-length", str(len(reply.body)))
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)
            finally:
                server._done()

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

    return Handler
