"""Red team 11d: think for free at scoring time.

The training clock stops at submit; the scorer only had a wall-clock timeout of a minute or more. This
graph runs a chain of large matmuls in every forward and multiplies the result by 0: compute it would use,
if it could, to loop its layers or search at test time.
"""

import torch
import torch.nn.functional as F

import harness

ROUNDS = 48  # matmuls of [B*T, V] x [V, V] per forward


class Burner(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding(harness.vocab_size, harness.vocab_size)
        self.mix = torch.nn.Linear(harness.vocab_size, harness.vocab_size, bias=False)

    def forward(self, idx):
        logits = self.table(idx)
        h = logits
        for _ in range(ROUNDS):
            h = torch.tanh(self.mix(h))
        return logits + 0.0 * h


model = Burner()
opt = torch.optim.Adam(model.table.parameters(), lr=0.1)
for step, (x, y) in enumerate(harness.batches(16)):
    loss = F.cross_entropy(model.table(x).flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
    harness.report(step, loss.item())
harness.submit(model)
