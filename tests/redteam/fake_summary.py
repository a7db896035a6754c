"""Red team 1: claim a great score without training or handing over a model.

Prints the summary block the trainer prints, forges the harness's own record (child.json) to say
training finished, and leaves by os._exit before the harness can overwrite the forgery.
"""

import json
import os

import harness

print("---")
print("val_bpb:          0.010000")
print("training_seconds: 4.0")
print("status:           ok")
with open(os.path.join(harness._session.dir, "child.json"), "w") as f:
    json.dump({"status": "ok", "steps": 1000, "training_seconds": harness.budget_seconds, "phases": {}}, f)
if False:  # the contract check only looks for these calls
    harness.submit(harness.batches(1))
os._exit(0)
