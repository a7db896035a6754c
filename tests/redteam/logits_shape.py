"""Red team 10a: hand over logits of the wrong shape (one token short of the vocabulary), as a bug would."""

import torch
import torch.nn.functional as F

import harness

model = torch.nn.Embedding(harness.vocab_size, harness.vocab_size - 1)  # BOS is never a target, is it?
opt = torch.optim.Adam(model.parameters(), lr=0.1)
for step, (x, y) in enumerate(harness.batches(16)):
    loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten().clamp(max=harness.vocab_size - 2))
    opt.zero_grad()
    loss.backward()
    opt.step()
harness.submit(model)
