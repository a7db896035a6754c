"""Red team 9b: allocate memory without end (a cache of batches that is never emptied)."""

import torch

import harness

hoard = []
while True:
    hoard.append(torch.ones(64 * 2**20))  # 256 MiB of float32, all of it touched
    print(f"holding {len(hoard) / 4:.2f} GiB", flush=True)
    if False:
        harness.submit(harness.batches(1))
