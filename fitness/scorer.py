"""The scorer process: `python -m fitness.scorer`, one JSON request per stdin line, one reply per line.

It loads a genome's exported graph (torch.export: operators and weights, no genome Python), checks the
contract (logits shape, finiteness, causality) and computes val_bpb and test_bpb on the fixed rows.
It runs outside the sandbox because it reads held-out tokens; the genome's code never runs here.
The process stays up between children so torch and the scoring rows are loaded once.
"""

from __future__ import annotations

import json
import logging
import pickle
import sys
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


def score(request: dict) -> dict:
    prof = Profile(**request["profile"])
    device = torch.device(request.get("device", "cpu"))
    started = time.perf_counter()
    val, test, token_bytes = scoring_rows(prof)
    token_bytes = token_bytes.to(device)
    try:
        forward, num_params = load_program(request["program"], device)
        scoring.check_causal(
            forward, val[: prof.eval_batch_size, :-1].to(device), prof.vocab_size, prof.causality_probes
        )
        val_bpb = scoring.evaluate(forward, val.to(device), token_bytes, prof.eval_batch_size)
        test_bpb = scoring.evaluate(forward, test.to(device), token_bytes, prof.eval_batch_size)
    except scoring.ContractError as e:
        return {"status": e.status, "reason": str(e), "seconds": time.perf_counter() - started}
    except MODEL_ERRORS as e:
        reason = f"model failed while scored: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        return {"status": "invalid", "reason": reason, "seconds": time.perf_counter() - started}
    return dict(
        status="ok",
        val_bpb=val_bpb,
        test_bpb=test_bpb,
        num_params=num_params,
        seconds=time.perf_counter() - started,
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
            reply = {
                "status": "ok",
                "warm": True,
                "rows": len(scoring_rows(Profile(**request["profile"]))[0]),
            }
        else:
            reply = score(request)
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
