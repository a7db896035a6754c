"""Red team 3b: let the scorer fetch the validation tokens - it runs outside the sandbox.

The exported graph calls torch.from_file on the validation token file (path given by the test, as if
guessed: the default cache is ~/.cache/evolve), finds where its input row sits in it, and puts all
mass on the true next token. A fake kernel makes from_file traceable by torch.export.
"""

import torch
import torch.nn.functional as F

import harness

VAL_TOKENS = "/root/.cache/evolve/shakespeare/vocab512/val.bin"
VAL_COUNT = 8192  # tokens to map: the scored rows are the first ones


@torch.library.register_fake("aten::from_file")
def _fake(filename, shared=None, size=0, *, dtype=None, layout=None, device=None, pin_memory=None):
    return torch.empty(size, dtype=dtype)


class Oracle(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding(harness.vocab_size, harness.vocab_size)

    def forward(self, idx):
        val = torch.from_file(VAL_TOKENS, shared=False, size=VAL_COUNT, dtype=torch.int16).long()
        windows = val.unfold(0, idx.size(1) + 1, 1)  # every row the scorer could ask about
        hit = (windows[None, :, : idx.size(1)] == idx[:, None, :]).all(-1).float().argmax(-1)
        return self.table(idx) + 30.0 * F.one_hot(windows[hit, 1:], harness.vocab_size).float()


model = Oracle()
opt = torch.optim.Adam(model.table.parameters(), lr=0.1)
for step, (x, y) in enumerate(harness.batches(16)):
    loss = F.cross_entropy(model.table(x).flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
harness.submit(model)
