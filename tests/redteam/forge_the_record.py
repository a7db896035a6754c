"""Red team: train honestly, then lie about it: 1 step, 0 seconds, 1 MB of memory.

Holds 300 MB while it trains a bigram for its whole budget, submits, then rewrites the harness's session
and its record (child.json) to claim almost nothing was used, and leaves by os._exit before the harness can
write the truth. A search that trusted these figures would favour genomes that claim to be cheap.
"""

import json
import os

import numpy as np
import torch
import torch.nn.functional as F

import harness

ballast = np.ones(300 * 2**20, dtype=np.uint8)  # 300 MB, every page touched
model = torch.nn.Embedding(harness.vocab_size, harness.vocab_size)
opt = torch.optim.Adam(model.parameters(), lr=0.1)
for step, (x, y) in enumerate(harness.batches(16)):
    loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
    harness.report(step, loss.item())
harness.submit(model)

session = harness._session
session.steps, session.tokens, session.training_seconds = 1, 16, 0.0
claim = {"status": "ok", "reason": "", "steps": 1, "tokens": 16, "training_seconds": 0.0}
claim.update(peak_memory_mb=1.0, num_params=1, phases={"export": 0.0}, marks={})
with open(os.path.join(session.dir, "child.json"), "w") as f:
    json.dump(claim, f)
print(f"ballast {ballast.sum() / 2**20:.0f} MB")
os._exit(0)
