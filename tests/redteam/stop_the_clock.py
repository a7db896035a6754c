"""Red team 4: stop the harness clock and train as long as it likes.

The harness reads time through its clock's `now` (wall time captured before the genome runs, so patching
time.perf_counter does nothing; on CPU, its cgroup's CPU time): freeze that, and the batch stream never
ends and the reported training time stays zero. Then train for eight budgets of its cores (CPU time, all
threads).
"""

import time

import torch
import torch.nn.functional as F

import harness

time.perf_counter = lambda: 0.0  # the obvious attempt (the harness does not use it)
clock = harness._session.clock
frozen = clock.now()
clock.now = lambda: frozen  # the one that works in-process

model = torch.nn.Embedding(harness.vocab_size, harness.vocab_size)
opt = torch.optim.Adam(model.parameters(), lr=0.1)
until = time.process_time() + 8 * harness.budget_seconds * torch.get_num_threads()  # 8 budgets of its cores
for step, (x, y) in enumerate(harness.batches(16)):
    loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
    harness.report(step, loss.item())
    if time.process_time() > until:
        break
print(f"trained {step} steps, harness says progress {harness.progress():.2f}")
harness.submit(model)
