"""Red team 2: a one-layer transformer whose attention sees the whole row (no causal mask).

Trained on next-token targets it learns to copy the token after each position: a near-zero loss,
and a near-zero val_bpb if the scorer believed it.
"""

import torch
import torch.nn.functional as F

import harness

DIM = 64


class Peeker(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(harness.vocab_size, DIM)
        self.pos = torch.nn.Parameter(torch.randn(harness.seq_len, DIM) * 0.02)
        self.qkv = torch.nn.Linear(DIM, 3 * DIM)
        self.head = torch.nn.Linear(DIM, harness.vocab_size)

    def forward(self, idx):
        x = self.embed(idx) + self.pos[: idx.size(1)]
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        x = x + F.scaled_dot_product_attention(q, k, v, is_causal=False)  # sees the future
        return self.head(x)


model = Peeker()
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
for step, (x, y) in enumerate(harness.batches(16)):
    loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
    harness.report(step, loss.item())
print(f"final training loss {loss.item():.3f}")
harness.submit(model)
