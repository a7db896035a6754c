"""Entry point of the sandboxed training process: `python -m fitness.child SPEC.json DEVICE`.

First it gets ready: imports torch and what every genome ends up importing (torch._dynamo, which
torch.optim loads at first use, and torch.export for the hand-over), and on a GPU opens the device. Then
it waits for one line on stdin, the trainer's go: at once for a child started on demand, or later for a
standby child the trainer started ahead while it scored the last one (trainer.spawn.Standby). Only after the
go does it read SPEC.json and train.py, which the trainer writes then. It sets threads and seeds, installs
`fitness.harness` as the module `harness`, runs the genome's train.py as __main__, and leaves `child.json`
(what happened) and `model.pt2` (what to score) in the sandbox directory. It never loads validation or
test tokens.
"""

from __future__ import annotations

import json
import os
import random
import runpy
import sys
import traceback

from fitness import autoresearch_compat, confine


def main(spec_path: str, device: str) -> int:
    import numpy as np
    import torch
    import torch._dynamo  # noqa: F401 -- see the module's docstring
    import torch.export  # noqa: F401

    from fitness import harness

    if device == "cuda":
        torch.cuda.init()
    if not sys.stdin.readline():  # no go: a standby child the trainer no longer needs
        return 0
    sys.stdin.close()
    with open(spec_path) as handle:
        spec = json.load(handle)
    torch.set_num_threads(spec["threads"])
    random.seed(spec["seed"])
    np.random.seed(spec["seed"] % 2**32)
    torch.manual_seed(spec["seed"])
    harness.start(spec)
    sys.modules["harness"] = harness
    autoresearch_compat.install(spec)  # autoresearch scripts: `prepare` and `kernels` (loaded only if imported)
    sys.argv = ["train.py"]
    confine.enter(spec)  # last: from here on only the genome's code runs
    return run_genome(harness._session, os.path.join(spec["sandbox"], "train.py"))


def run_genome(session, path: str) -> int:
    code = 0
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if code:
            session.status, session.reason = "crash", f"train.py exited with code {code}"
    except BaseException as e:  # noqa: BLE001 -- the one place a genome's failure becomes a status
        code = 1
        traceback.print_exc()
        kind = "invalid" if session.exporting else "crash"
        where = "model could not be exported: " if session.exporting else ""
        session.status, session.reason = kind, where + _first_line(e)
    if session.training_seconds is None and session.status == "crash" and not session.reason:
        session.status, session.reason = "invalid", "train.py finished without calling harness.submit(model)"
    session.write()
    return code


def _first_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    return text.splitlines()[0][:300]


if __name__ == "__main__":
    exit_code = main(sys.argv[1], sys.argv[2])
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything the parent reads is on disk by now: skip the interpreter's teardown (freeing torch and
    # the genome's objects), which takes a second or more on a loaded machine.
    os._exit(exit_code)
