"""The scorer process: `python -m fitness.scorer`, one JSON request per stdin line, one reply per line.

It loads a genome's exported graph (torch.export: operators and weights, no genome Python), checks the
contract (logits shape, finiteness, causality) and computes val_bpb and test_bpb on the fixed rows.
It runs outside the sandbox because it reads held-out tokens; the genome's code never runs here.
The process stays up between children so torch, the export loader and the scoring rows are loaded once.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import pickle
import sys
import tempfile
import time
import zipfile

import torch

from fitness import data, safeload, scoring
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
        forward, _ = load_program(path, torch.device("cpu"))
        forward(torch.zeros(2, 2))


def warm(prof: Profile) -> dict:
    started = time.perf_counter()
    rows = len(scoring_rows(prof)[0])
    load_export_machinery()
    return {"status": "ok", "warm": True, "rows": rows, "seconds": time.perf_counter() - started}


def load_program(path: str, device: torch.device):
    try:
        program = safeload.load(path)  # never torch.export.load: it unpickles what the genome wrote
    except safeload.UnsafeModel as e:
        raise scoring.ContractError("invalid", f"model file refused: {e}") from None
    except MODEL_ERRORS as e:
        raise scoring.ContractError("invalid", f"model file could not be loaded: {type(e).__name__}: {e}") from e
    names = set(program.graph_signature.parameters)
    num_params = sum(t.numel() for name, t in program.state_dict.items() if name in names)
    return safeload.stateless_forward(program, device), num_params


class ReuseFirst:
    """A forward that keeps its first (input, logits) pair until that input comes again, once. The causality
    probe's unchanged batch is the first validation batch: its logits are computed once, probed and scored."""

    def __init__(self, forward: scoring.Forward):
        self.forward, self.calls, self.kept = forward, 0, None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.kept is not None and torch.equal(self.kept[0], x):
            logits, self.kept = self.kept[1], None
            return logits
        logits = self.forward(x)
        self.calls += 1
        if self.calls == 1:
            self.kept = (x, logits)
        return logits


def score(request: dict) -> dict:
    prof = Profile(**request["profile"])
    device = torch.device(request.get("device", "cpu"))
    t0 = time.perf_counter()
    val, test, token_bytes = scoring_rows(prof)
    token_bytes, batch = token_bytes.to(device), prof.eval_batch_size
    try:
        forward, num_params = load_program(request["program"], device)
        t1 = time.perf_counter()
        forward = ReuseFirst(forward)
        scoring.check_causal(forward, val[:batch, :-1].to(device), prof.vocab_size, prof.causality_probes)
        t2 = time.perf_counter()
        val_bpb = scoring.evaluate(forward, val.to(device), token_bytes, batch)
        test_bpb = scoring.evaluate(forward, test.to(device), token_bytes, batch)
        t3 = time.perf_counter()
    except scoring.ContractError as e:
        return {"status": e.status, "reason": str(e), "seconds": time.perf_counter() - t0}
    except MODEL_ERRORS as e:
        reason = f"model failed while scored: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        return {"status": "invalid", "reason": reason, "seconds": time.perf_counter() - t0}
    return dict(
        status="ok",
        val_bpb=val_bpb,
        test_bpb=test_bpb,
        num_params=num_params,
        seconds=t3 - t0,
        phases={"load": t1 - t0, "probe": t2 - t1, "eval": t3 - t2},  # probe includes the first val batch
    )


def main() -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    out = sys.stdout
    sys.stdout = sys.stderr  # anything else printed must not corrupt the reply channel
    for line in sys.stdin:
        request = json.loads(line)
        if "threads" in request:
            torch.set_num_threads(request["threads"])
        if request.get("warm"):
            reply = warm(Profile(**request["profile"]))
        else:
            reply = score(request)
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
