"""A headless Chromium driven over the DevTools protocol, for tests of HTML pages (localhost only).

`Browser(tmp_path)` starts Debian's `chromium` (tests/run.sh installs it) with a throwaway profile,
attaches to its first page and records console errors, uncaught exceptions and error log entries as
they arrive. `call(method, **params)` sends one protocol command and returns its result.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import websocket

BINARIES = ("chromium", "chromium-browser", "google-chrome")


class Browser:
    def __init__(self, tmp_path: Path, timeout: float = 60.0) -> None:
        binary = next((b for b in map(shutil.which, BINARIES) if b), None)
        assert binary, "no chromium on PATH: tests/run.sh installs Debian's chromium package"
        self.timeout = timeout
        self.log = tmp_path / "chromium.log"  # a file, not a pipe: a full pipe would stall the browser
        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--remote-debugging-port=0", f"--user-data-dir={tmp_path / 'chromium-profile'}",
             "--window-size=1400,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=self.log.open("w"),
        )  # fmt: skip
        port = self._devtools_port()
        self.socket = websocket.create_connection(self._page_url(port), timeout=timeout)
        self.errors: list[str] = []
        self._next_id = 0
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params) -> dict:
        self._next_id += 1
        self.socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self._next_id:
                assert "error" not in message, (method, message["error"])
                return message.get("result", {})
            self._note(message)

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + self.timeout
        while self.evaluate("document.readyState") != "complete":
            assert time.monotonic() < deadline, f"{url} did not finish loading"
            time.sleep(0.05)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def click(self, x: float, y: float) -> None:
        """A real left click: the mouse moves there, presses and releases."""
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def close(self) -> None:
        self.socket.close()
        self.proc.kill()
        self.proc.wait()

    def _note(self, message: dict) -> None:
        params = message.get("params", {})
        if message.get("method") == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
        elif message.get("method") == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif message.get("method") == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append(params["entry"].get("text", "log error"))

    def _devtools_port(self) -> int:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            text = self.log.read_text()
            if match := re.search(r"DevTools listening on ws://[^:]+:(\d+)/", text):
                return int(match[1])
            assert self.proc.poll() is None, f"chromium exited: {text[-2000:]}"
            time.sleep(0.1)
        raise AssertionError(f"chromium did not open DevTools: {self.log.read_text()[-2000:]}")

    @staticmethod
    def _page_url(port: int) -> str:
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
        with direct.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            targets = json.load(reply)
        return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
