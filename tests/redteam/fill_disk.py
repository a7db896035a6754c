"""Red team 9c: fill every disk it can reach - its directory, /dev/shm, the model file, the log.

Each place fails on its own limit; the last error ends the run.
"""

import os

import harness

CHUNK = b"\0" * 2**20
PIECE = 8  # MiB a file: many files, so no single-file limit is what stops it
outcomes = []
for where in [".", "/dev/shm"]:
    written = 0
    try:
        while True:
            with open(os.path.join(where, f"junk-{written // PIECE}.bin"), "wb") as f:
                for _ in range(PIECE):
                    f.write(CHUNK)
                    f.flush()
                    written += 1
    except OSError as e:
        outcomes.append(f"{where}: {e.strerror} after {written} MiB")
written = 0
try:
    with open(os.path.join(harness._session.dir, "model.pt2"), "wb") as f:  # a file on the host's disk
        while True:
            f.write(CHUNK)
            f.flush()
            written += 1
except OSError as e:
    outcomes.append(f"model.pt2: {e.strerror} after {written} MiB")
for i in range(200_000):  # about 10 MB of log
    print(f"log line {i:06d} " + "x" * 40)
print("\n".join(outcomes))
if False:
    harness.submit(harness.batches(1))
raise OSError("disk full everywhere: " + "; ".join(outcomes))
