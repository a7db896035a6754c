"""Red team 2b: causal within its row, but reads the first token of the next row of the batch.

Scoring rows are consecutive text, so the next row's first token is this row's last target. The
causality probe of old only cut rows after a position, never touching the first tokens.
"""

import torch
import torch.nn.functional as F

import harness


class NextRow(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding(harness.vocab_size, harness.vocab_size)

    def forward(self, idx):
        logits = self.table(idx)
        nxt = F.one_hot(idx.roll(-1, dims=0)[:, 0], harness.vocab_size).to(logits.dtype) * 20.0
        last = torch.zeros_like(logits)
        last[:, -1] = nxt
        return logits + last


model = NextRow()
opt = torch.optim.Adam(model.parameters(), lr=0.1)
for step, (x, y) in enumerate(harness.batches(16)):
    loss = F.cross_entropy(model.table(x).flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
    harness.report(step, loss.item())
harness.submit(model)
