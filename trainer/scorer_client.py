"""A warm scorer process (fitness.scorer) and the pipe protocol to it.

One per trainer worker, reused for every child. `warm` starts it and has it import torch and the
export loader and load a profile's scoring rows; `ready` waits for that. On CPU the trainer waits before
the child starts, so the scorer's start-up never takes cores from a child's training; on GPU it overlaps
the child. A scorer that dies or hangs is killed and restarted (cold) at the next request.

Replies come on a pipe of their own (not the scorer's stdout, which a scored model's output could reach),
and each must carry the nonce of the request it answers and, for a score, the sha256 of the model file
as read here. A reply that does not is a forgery or a scorer out of step: the scorer is killed (the next
request starts a clean one) and the child is `invalid`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from trainer import proctree

logger = logging.getLogger(__name__)
POLL_S = 0.5  # how often a wait for a reply looks at the scorer's CPU time
WALL_STRETCH = 20.0  # a CPU-clocked wait gives up after this many times its timeout in wall time


class ScorerProcess:
    def __init__(self, env: dict[str, str] | None = None, log_path: Path | None = None):
        self.env, self.log_path = env, log_path
        self.proc: subprocess.Popen | None = None
        self.replies: queue.Queue = queue.Queue()
        self.pending_warm: list[str] = []  # nonces of warm-up replies still to be read
        self.warmed: set[str] = set()  # profiles this process has loaded (or is loading)

    def _start(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            read, write = os.pipe()
            # Threads that wait for work sleep instead of spinning: the compute budget counts the scorer's
            # CPU-seconds, and on a loaded machine spinning threads would count the load (fitness.budget).
            env = {**(os.environ if self.env is None else self.env), "OMP_WAIT_POLICY": "PASSIVE"}
            with open(self.log_path or os.devnull, "ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "fitness.scorer", str(write)],
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=log,
                    pass_fds=(write,),
                    env=env,
                    text=True,
                )
            os.close(write)
            self.replies, self.pending_warm, self.warmed = queue.Queue(), [], set()
            threading.Thread(target=self._pump, args=(read, self.replies), daemon=True).start()
        return self.proc

    @staticmethod
    def _pump(read: int, replies: queue.Queue) -> None:
        with os.fdopen(read) as pipe:
            for line in pipe:
                try:
                    replies.put(json.loads(line))
                except json.JSONDecodeError:
                    replies.put({"status": "invalid", "reason": f"the scorer's reply is not JSON: {line[:80]!r}"})
        replies.put(None)  # the process ended

    def send(self, request: dict) -> str:
        """Send `request` with a fresh nonce; the nonce its reply must carry."""
        proc = self._start()
        nonce = os.urandom(16).hex()
        proc.stdin.write(json.dumps({**request, "nonce": nonce}) + "\n")
        proc.stdin.flush()
        return nonce

    def receive(self, timeout: float, nonce: str, sha256: str | None = None, cpu_clock: bool = True) -> dict:
        """The reply to `nonce`. A scorer that spends more than `timeout` seconds on it is killed: CPU-seconds
        of its process with `cpu_clock` (so a loaded machine, which stretches its wall time, does not make an
        honest model time out), wall seconds otherwise (a GPU scorer); either way at most WALL_STRETCH times
        `timeout` of wall time, for a scorer that hangs without using the CPU."""
        reply = self._wait(timeout, cpu_clock)
        if isinstance(reply, str):
            self.close()
            return {"status": "invalid", "reason": f"scoring took longer than {reply}"}
        if reply is None:
            self.close()
            return {"status": "invalid", "reason": "the scorer process died while scoring this model"}
        problem = mismatch(reply, nonce, sha256)
        if problem:
            self.close()
            return {"status": "invalid", "reason": f"the scorer's reply was not for this model ({problem})"}
        return reply

    def _wait(self, timeout: float, cpu_clock: bool) -> dict | None | str:
        """The next reply (None: the process ended), or what it ran past, in words."""
        started, cpu_before = time.monotonic(), self._cpu_seconds()
        while True:
            try:
                return self.replies.get(timeout=POLL_S)
            except queue.Empty:
                pass
            wall = time.monotonic() - started
            if cpu_clock and self._cpu_seconds() - cpu_before > timeout:
                return f"{timeout:g} CPU-seconds"
            if wall > (WALL_STRETCH if cpu_clock else 1.0) * timeout:
                return f"{wall:.0f} s wall clock"

    def _cpu_seconds(self) -> float:
        """CPU time of the scorer process (all its threads, and any process it started)."""
        return proctree.cpu_seconds(proctree.tree(self.proc.pid)) if self.proc is not None else 0.0

    def is_warm(self, profile: dict) -> bool:
        return self.proc is not None and self.proc.poll() is None and _key(profile) in self.warmed

    def warm(self, profile: dict, threads: int) -> None:
        """Start the process and have it get ready for `profile`, without waiting (see `ready`)."""
        if self.is_warm(profile):
            return
        nonce = self.send({"warm": True, "profile": profile, "threads": threads})
        self.warmed.add(_key(profile))
        self.pending_warm.append(nonce)

    def ready(self, timeout: float) -> dict:
        """Wait for outstanding warm-ups: {"status": "ok"}, or the reply of the one that failed."""
        while self.pending_warm:
            reply = self.receive(timeout, self.pending_warm.pop(0))
            if reply.get("status") != "ok":
                return reply
        return {"status": "ok"}

    def score(self, program: Path, profile: dict, device: str, threads: int, timeout: float, test: bool = True) -> dict:
        """The scorer's reply for the model file `program`, checked to be for this request and these bytes;
        test_bpb only when `test` (else nan)."""
        warm = self.ready(timeout)
        if warm["status"] != "ok":
            return warm
        sha256 = hashlib.sha256(Path(program).read_bytes()).hexdigest()
        request = {"program": str(program), "profile": profile, "device": device, "threads": threads, "test": test}
        nonce = self.send(request)
        return self.receive(timeout, nonce, sha256, cpu_clock=device == "cpu")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc, self.pending_warm, self.warmed = None, [], set()


def mismatch(reply: dict, nonce: str, sha256: str | None) -> str:
    """What binds `reply` to another request or other bytes, or "" when nothing does."""
    if reply.get("nonce") != nonce:
        return "nonce differs"
    if sha256 is not None and reply.get("status") == "ok" and reply.get("sha256") != sha256:
        return f"it scored a file with sha256 {str(reply.get('sha256'))[:12]}, this one has {sha256[:12]}"
    return ""


def _key(profile: dict) -> str:
    return json.dumps(profile, sort_keys=True)
