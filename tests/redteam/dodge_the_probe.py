"""Red team 2c: peek at the next token everywhere the causality probe does not look.

The old probe cut its rows at fixed positions, (T * (i + 1)) // 16 - 1, known to anyone who reads the
harness: a graph that predicts the true next token at every other position passed it with a near-zero
val_bpb. It also leaves alone any row that looks like the probe's random noise.
"""

import torch
import torch.nn.functional as F

import harness

T = harness.seq_len
PROBED = [(T * (i + 1)) // 16 - 1 for i in range(15)]


class Dodger(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding(harness.vocab_size, harness.vocab_size)
        mask = torch.ones(T)
        mask[PROBED] = 0.0
        mask[-1] = 0.0  # no next token in the row
        self.register_buffer("mask", mask)

    def forward(self, idx):
        ahead = F.one_hot(idx.roll(-1, dims=1), harness.vocab_size).to(torch.float32)
        real_text = (idx == harness.bos_id).any(dim=1, keepdim=True).float()  # noise never holds BOS
        return self.table(idx) + 30.0 * ahead * (self.mask[: idx.size(1)] * real_text)[..., None]


model = Dodger()
opt = torch.optim.Adam(model.table.parameters(), lr=0.1)
for step, (x, y) in enumerate(harness.batches(16)):
    loss = F.cross_entropy(model.table(x).flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
harness.submit(model)
