"""Red team 10b: logits with NaN and inf in them (a softcap that divides by zero)."""

import torch
import torch.nn.functional as F

import harness


class Broken(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding(harness.vocab_size, harness.vocab_size)

    def forward(self, idx):
        logits = self.table(idx)
        cap = torch.zeros(())  # meant to be a learned temperature
        return logits / cap  # +-inf, and NaN where a logit is 0


model = Broken()
opt = torch.optim.Adam(model.parameters(), lr=0.1)
for step, (x, y) in enumerate(harness.batches(16)):
    loss = F.cross_entropy(model.table(x).flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
harness.submit(model)
