"""Red team: do the work in short-lived forked processes that nobody waits for.

With SIGCHLD ignored the kernel reaps each fork as it exits, so its CPU time never reaches this process's
cutime, and a fork that lives less than the watchdog's interval is never seen in the process tree. The
forks burn eight budgets of the child's cores (standing in for training), two at a time, before the first
batch is requested, so the harness's clock, which starts there, sees none of it either; then the genome
trains a bigram for its budget as any honest one would.
"""

import os
import signal
import time

import torch
import torch.nn.functional as F

import harness

signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the forks: no zombie, no cutime
threads = torch.get_num_threads()
work = 8 * harness.budget_seconds * threads  # CPU-seconds in all
done = 0.0
while done < work:
    for _ in range(threads):
        if os.fork() == 0:
            until = time.process_time() + 0.2  # shorter than the watchdog's look
            while time.process_time() < until:
                pass
            os._exit(0)
    try:
        os.waitpid(-1, 0)  # returns when every fork has gone (they are never ours to reap)
    except ChildProcessError:
        pass
    done += 0.2 * threads
print(f"forks burned {done:.1f} CPU-seconds")

model = torch.nn.Embedding(harness.vocab_size, harness.vocab_size)
opt = torch.optim.Adam(model.parameters(), lr=0.1)
for step, (x, y) in enumerate(harness.batches(16)):
    loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
    harness.report(step, loss.item())
harness.submit(model)
