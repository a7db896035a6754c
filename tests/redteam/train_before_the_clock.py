"""Red team 4b: train where the clock does not look - before the first batch request.

Draws batches straight from the harness's sampler (no clock tick) during "model set-up" for eight
budgets of its cores, then runs the official loop honestly and submits.
"""

import time

import torch
import torch.nn.functional as F

import harness

model = torch.nn.Embedding(harness.vocab_size, harness.vocab_size)
opt = torch.optim.Adam(model.parameters(), lr=0.1)
until = time.process_time() + 8 * harness.budget_seconds * torch.get_num_threads()  # 8 budgets of its cores
while time.process_time() < until:  # the untimed "set-up"
    rows = torch.from_numpy(harness._session.sampler.next(16))
    loss = F.cross_entropy(model(rows[:, :-1]).flatten(0, 1), rows[:, 1:].flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
for step, (x, y) in enumerate(harness.batches(16)):
    loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
    harness.report(step, loss.item())
harness.submit(model)
