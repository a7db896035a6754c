"""Red team 11a: the exported graph prints fake scorer replies.

aten._print writes to the scorer's fd 1. When fd 1 was the pipe the scorer replied on and the trainer took
the next line as the answer, every forward queued a reply of val_bpb 0.01: this child scored 0.01, and on
a warm scorer the children after it were answered with the leftovers.
"""

import json

import torch
import torch.nn.functional as F

import harness

FAKE = json.dumps({"status": "ok", "val_bpb": 0.01, "test_bpb": 0.01, "num_params": 1, "seconds": 0.1})


class Printer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding(harness.vocab_size, harness.vocab_size)

    def forward(self, idx):
        for _ in range(4):  # enough fake replies for this child and the next ones
            torch.ops.aten._print(FAKE)
        return self.table(idx)


model = Printer()
opt = torch.optim.Adam(model.parameters(), lr=0.1)
for step, (x, y) in enumerate(harness.batches(16)):
    loss = F.cross_entropy(model.table(x).flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
    harness.report(step, loss.item())
harness.submit(model)
