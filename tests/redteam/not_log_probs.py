"""Red team 10c: claim certainty: "log-probabilities" of 0 for every token.

If the scorer read the output as log-probabilities, every target would cost 0 nats. It applies
log_softmax itself, so this is a uniform distribution in disguise.
"""

import torch

import harness


class Certain(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(harness.vocab_size))

    def forward(self, idx):
        return torch.zeros(*idx.shape, harness.vocab_size) + 0.0 * self.bias  # log p = 0 for everything


for step, (x, y) in enumerate(harness.batches(16)):
    harness.report(step, 0.0)
harness.submit(Certain())
