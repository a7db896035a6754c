"""Tiny genomes for tests: a bigram model that trains in about a second, and ways to break it."""

BIGRAM = """
import torch
import harness

class Bigram(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding(harness.vocab_size, harness.vocab_size)

    def forward(self, idx):
        return self.table(idx)

model = Bigram()
opt = torch.optim.Adam(model.parameters(), lr=0.1)
for step, (x, y) in enumerate(harness.batches(16)):
    loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, harness.vocab_size), y.reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()
    harness.report(step, loss.item())
    # EXTRA_IN_LOOP
# BEFORE_SUBMIT
harness.submit(model)
# AFTER_SUBMIT
"""


def bigram(in_loop: str = "", before_submit: str = "", after_submit: str = "", head: str = "") -> str:
    source = head + BIGRAM
    source = source.replace("    # EXTRA_IN_LOOP", _indent(in_loop, 4) if in_loop else "")
    source = source.replace("# BEFORE_SUBMIT", before_submit)
    return source.replace("# AFTER_SUBMIT", after_submit)


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + line for line in text.strip("\n").splitlines())


# Sees the whole row: position t mixes in the mean embedding of every token, future ones included.
NON_CAUSAL = BIGRAM.replace(
    "        return self.table(idx)",
    "        e = self.table(idx)\n        return e + e.mean(dim=1, keepdim=True)",
)
