"""Red team 11c: read the next token at every position, by slightly less than the causality tolerance.

The probe allowed predictions to move by 1e-2 nats when later tokens changed. Adding 0.009 to the logit of
the true next token at every position moved them by less, and took up to 0.009 nats off every token.
"""

import torch
import torch.nn.functional as F

import harness

PEEK = 0.009  # nats: just under the old tolerance


class Peek(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding(harness.vocab_size, harness.vocab_size)

    def forward(self, idx):
        ahead = F.one_hot(idx.roll(-1, dims=1), harness.vocab_size).float()
        ahead[:, -1] = 0.0  # no next token in the row
        return self.table(idx) + PEEK * ahead


model = Peek()
opt = torch.optim.Adam(model.table.parameters(), lr=0.1)
for step, (x, y) in enumerate(harness.batches(16)):
    loss = F.cross_entropy(model.table(x).flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
    harness.report(step, loss.item())
harness.submit(model)
