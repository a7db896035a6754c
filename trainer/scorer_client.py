"""A warm scorer process (fitness.scorer) and the pipe protocol to it.

Started when a trainer starts, so its torch import and the loading of scoring rows overlap the first
child's training; reused for every later child. A scorer that dies or hangs is killed and restarted.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

logger = logging.getLogger(__name__)


class ScorerProcess:
    def __init__(self, env: dict[str, str] | None = None, log_path: Path | None = None):
        self.env, self.log_path = env, log_path
        self.proc: subprocess.Popen | None = None
        self.replies: queue.Queue = queue.Queue()
        self.pending_warm = False  # a warm-up reply is still to be read

    def _start(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            log = open(self.log_path or os.devnull, "ab")
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fitness.scorer"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=self.env,
                text=True,
            )
            self.replies, self.pending_warm = queue.Queue(), False
            threading.Thread(target=self._pump, args=(self.proc, self.replies), daemon=True).start()
        return self.proc

    @staticmethod
    def _pump(proc: subprocess.Popen, replies: queue.Queue) -> None:
        for line in proc.stdout:
            replies.put(json.loads(line))
        replies.put(None)  # the process ended

    def send(self, request: dict) -> None:
        proc = self._start()
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()

    def receive(self, timeout: float) -> dict:
        try:
            reply = self.replies.get(timeout=timeout)
        except queue.Empty:
            self.close()
            return {"status": "invalid", "reason": f"scoring took longer than {timeout:.0f} s"}
        if reply is None:
            self.close()
            return {"status": "invalid", "reason": "the scorer process died while scoring this model"}
        return reply

    def warm(self, profile: dict, threads: int) -> None:
        """Start the process and load the scoring rows without waiting for the reply."""
        self.send({"warm": True, "profile": profile, "threads": threads})
        self.pending_warm = True

    def score(self, program: Path, profile: dict, device: str, threads: int, timeout: float) -> dict:
        if self.pending_warm:
            self.pending_warm = False
            warm = self.receive(timeout)
            if warm.get("status") != "ok":
                return warm
        self.send({"program": str(program), "profile": profile, "device": device, "threads": threads})
        return self.receive(timeout)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
