"""The scorer process: `python -m fitness.scorer REPLY_FD`, one JSON request per stdin line, one reply per
line on the private pipe REPLY_FD.

It loads a genome's exported graph (torch.export: allowlisted operators and weights, no genome Python),
checks the contract (logits shape, finiteness, causality, compute budget) and computes val_bpb and
test_bpb on the fixed rows. It runs outside the sandbox because it reads held-out tokens; the genome's
code never runs here. The process stays up between children so torch, the export loader and the scoring
rows are loaded once.

Replies never share a descriptor with anything a model could write to: fd 1 and fd 2 go to the log before
any model is loaded, and each reply carries its request's nonce and the sha256 of the model bytes scored,
which trainer.scorer_client checks.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import pickle
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass

import torch

from fitness import budget, data, probing, safeload, scoring
from fitness.profile import Profile

logger = logging.getLogger(__name__)
_rows: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
# What a broken or hostile model file / graph can raise while being loaded or run.
MODEL_ERRORS = (
    RuntimeError,
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    IndexError,
    OSError,
    EOFError,
    zipfile.BadZipFile,
    pickle.UnpicklingError,
    NotImplementedError,
    AssertionError,
)


def scoring_rows(prof: Profile) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(val rows, test rows, token_bytes) for a profile, loaded once per process."""
    key = (prof.dataset, prof.vocab_size, prof.seq_len, prof.eval_tokens)
    if key not in _rows:
        import numpy as np

        cache = data.TokenCache.at(prof.dataset, prof.vocab_size)
        val = torch.from_numpy(data.eval_rows(cache, "val", prof.seq_len, prof.eval_tokens))
        test = torch.from_numpy(data.eval_rows(cache, "test", prof.seq_len, prof.eval_tokens))
        _rows[key] = (val, test, torch.from_numpy(np.load(cache.token_bytes_path)).long())
    return _rows[key]


@functools.cache
def load_export_machinery() -> None:
    """The first graph a process loads pays one-time costs (lazy imports, the deserializer's first run): pay
    them while no child is waiting, with a tiny graph of our own through the same gate as a genome's."""
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        path = os.path.join(tmp, "model.pt2")
        torch.export.save(torch.export.export(torch.nn.Linear(2, 2), (torch.zeros(2, 2),), strict=False), path)
        loaded = load_program(path, torch.device("cpu"))
        loaded.forward(torch.zeros(2, 2))


def warm(prof: Profile) -> dict:
    started = time.perf_counter()
    rows = len(scoring_rows(prof)[0])
    load_export_machinery()
    return {"status": "ok", "warm": True, "rows": rows, "seconds": time.perf_counter() - started}


@dataclass(frozen=True)
class Loaded:
    forward: scoring.Forward
    num_params: int
    matmul_weights: int  # what the compute budget counts (fitness.budget)
    sha256: str  # of the model bytes loaded


def load_program(path: str, device: torch.device) -> Loaded:
    try:
        loaded = safeload.load(path)  # never torch.export.load: it unpickles what the genome wrote
    except safeload.UnsafeModel as e:
        raise scoring.ContractError("invalid", f"model file refused: {e}") from None
    except MODEL_ERRORS as e:
        raise scoring.ContractError("invalid", f"model file could not be loaded: {type(e).__name__}: {e}") from e
    program = loaded.program
    names = set(program.graph_signature.parameters)
    num_params = sum(t.numel() for name, t in program.state_dict.items() if name in names)
    forward = safeload.stateless_forward(program, device)
    return Loaded(forward, num_params, budget.matmul_weights(program), loaded.sha256)


def score(request: dict) -> dict:
    prof = Profile(**request["profile"])
    device = torch.device(request.get("device", "cpu"))
    t0 = time.perf_counter()
    val, test, token_bytes = scoring_rows(prof)
    reply: dict = {}
    try:
        loaded = load_program(request["program"], device)
        reply["sha256"] = loaded.sha256
        t1 = time.perf_counter()
        held_out = request.get("test", True)  # a run asks for test_bpb of the genomes it confirms only
        forward = _metered(loaded, prof, [len(val), len(test)] if held_out else [len(val)], device)
        t2 = time.perf_counter()
        splits = {"val": val.to(device), "test": test.to(device)} if held_out else {"val": val.to(device)}
        scores = probing.score(forward, splits, token_bytes.to(device), prof.eval_batch_size, prof.causality_probes)
        t3 = time.perf_counter()
    except scoring.ContractError as e:
        return {**reply, "status": e.status, "reason": str(e), "seconds": time.perf_counter() - t0}
    except MODEL_ERRORS as e:
        reason = f"model failed while scored: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        return {**reply, "status": "invalid", "reason": reason, "seconds": time.perf_counter() - t0}
    # probe: the probe forwards and their comparisons, interleaved with the scored batches (eval)
    phases = {"load": t1 - t0, "budget": t2 - t1, **scores.seconds}
    phases["eval"] += max(0.0, t3 - t2 - sum(scores.seconds.values()))
    return dict(
        reply,
        status="ok",
        val_bpb=scores.bpb["val"],
        test_bpb=scores.bpb.get("test", math.nan),
        num_params=loaded.num_params,
        seconds=t3 - t0,
        phases=phases,
        forward_seconds=forward.used,
    )


def _metered(loaded: Loaded, prof: Profile, rows: list[int], device: torch.device) -> budget.Meter:
    """The model's forward, metered against its compute budget: every scored batch and every probe."""
    forwards = sum(-(-n // prof.eval_batch_size) for n in rows) + 1 + prof.causality_probes
    shape = (prof.eval_batch_size, prof.seq_len)
    return budget.meter(loaded.forward, loaded.matmul_weights, forwards, shape, prof.vocab_size, device)


def main(reply_fd: int) -> int:
    replies = os.fdopen(reply_fd, "w")
    os.dup2(2, 1)  # fd 1 is the log too: no model output can reach the reply pipe
    sys.stdout = sys.stderr
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    for line in sys.stdin:
        request = json.loads(line)
        if "threads" in request:
            torch.set_num_threads(request["threads"])
        if request.get("warm"):
            reply = warm(Profile(**request["profile"]))
        else:
            reply = score(request)
        replies.write(json.dumps({**reply, "nonce": request.get("nonce")}) + "\n")
        replies.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
