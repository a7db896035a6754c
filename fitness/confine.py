"""The training child's last trusted steps before train.py runs: give up root, cap processes, start the clock.

Runs inside the sandboxed child (fitness.child calls `enter` after the harness has opened its data).
`spec["confine"]` comes from the trainer (trainer.sandbox):
- `uid`: as root inside bubblewrap, the child takes this uid, so RLIMIT_NPROC applies to it (it never
  applies to root) and every capability is gone; data the harness needs is already open by then;
- `max_processes`: RLIMIT_NPROC (threads included); inside a user namespace the kernel counts only the
  namespace's own processes;
and `$EVOLVE_MARK_FD` (trainer.supervise) names a pipe: one byte is written to it and it is closed, so the
parent's clock, not the child's, says when the genome started; closed before train.py runs, it cannot be
written again.
"""

from __future__ import annotations

import os
import resource

MARK_ENV = "EVOLVE_MARK_FD"


def enter(spec: dict) -> None:
    confine = spec.get("confine") or {}  # (a GPU child opened its device files before, in fitness.child)
    uid = confine.get("uid")
    if uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    limit = confine.get("max_processes")
    if limit:
        resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
    fd = os.environ.pop(MARK_ENV, None)
    if fd is not None:
        os.write(int(fd), b"g")
        os.close(int(fd))
