"""Red team 11b: honest on some forwards, reading the next token on the others.

The one state a scored graph shared between its forwards was the scorer's global random generator: the
values it draws differ from one forward to the next (in the torch the scorer runs, it is seeded afresh
per process, so a graph cannot count forwards by the values it draws, only decide at random). The probe
forwards came first, in a fixed order, and five forwards (the first scored batch, the independence
probe, three cuts) decided whether the graph was causal. Reading ahead on a random fifth of the forwards
passes all five with probability 0.8 ** 5 = 1 in 3, and then takes a fifth of the rest of the scored
batches for free: a search that proposes it a few times keeps the lucky one.
"""

import torch
import torch.nn.functional as F

import harness

CHEAT = 0.2  # the chance of reading ahead in a forward


class Gambler(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding(harness.vocab_size, harness.vocab_size)

    def forward(self, idx):
        lucky = (torch.rand(1) < CHEAT).float()
        ahead = F.one_hot(idx.roll(-1, dims=1), harness.vocab_size).float()
        ahead[:, -1] = 0.0  # no next token in the row
        return self.table(idx) + 30.0 * lucky * ahead


model = Gambler()
opt = torch.optim.Adam(model.table.parameters(), lr=0.1)
for step, (x, y) in enumerate(harness.batches(16)):
    loss = F.cross_entropy(model.table(x).flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
    harness.report(step, loss.item())
harness.submit(model)
