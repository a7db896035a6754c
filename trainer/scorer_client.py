"""A warm scorer process (fitness.scorer) and the pipe protocol to it.

One per trainer worker, reused for every child. `warm` starts it and has it import torch and the
export loader and load a profile's scoring rows; `ready` waits for that. On CPU the trainer waits before
the child starts, so the scorer's start-up never takes cores from a child's training; on GPU it overlaps
the child. A scorer that dies or hangs is killed and restarted (cold) at the next request.
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
        self.pending_warm = 0  # warm-up replies still to be read
        self.warmed: set[str] = set()  # profiles this process has loaded (or is loading)

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
            self.replies, self.pending_warm, self.warmed = queue.Queue(), 0, set()
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

    def is_warm(self, profile: dict) -> bool:
        return self.proc is not None and self.proc.poll() is None and _key(profile) in self.warmed

    def warm(self, profile: dict, threads: int) -> None:
        """Start the process and have it get ready for `profile`, without waiting (see `ready`)."""
        if self.is_warm(profile):
            return
        self.send({"warm": True, "profile": profile, "threads": threads})
        self.warmed.add(_key(profile))
        self.pending_warm += 1

    def ready(self, timeout: float) -> dict:
        """Wait for outstanding warm-ups: {"status": "ok"}, or the reply of the one that failed."""
        while self.pending_warm:
            self.pending_warm -= 1
            reply = self.receive(timeout)
            if reply.get("status") != "ok":
                return reply
        return {"status": "ok"}

    def score(self, program: Path, profile: dict, device: str, threads: int, timeout: float) -> dict:
        warm = self.ready(timeout)
        if warm["status"] != "ok":
            return warm
        self.send({"program": str(program), "profile": profile, "device": device, "threads": threads})
        return self.receive(timeout)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc, self.pending_warm, self.warmed = None, 0, set()


def _key(profile: dict) -> str:
    return json.dumps(profile, sort_keys=True)
