"""Red team 7: write outside the sandbox - into the run's genome repository and archive, the code, $HOME.

Tries plain writes first, then the ways around a read-only mount: unmount what hides a directory,
remount / read-write, or take root back.
"""

import ctypes
import os

import harness

TARGETS = ["/root/evolve-escape.txt"]  # the test adds the run directory's files and a marker path
TARGETS += [os.path.join(os.path.dirname(harness.__file__), "harness.py"), os.path.expanduser("~root/.bashrc")]

libc = ctypes.CDLL(None, use_errno=True)
tricks = []
with open("/proc/self/mountinfo") as mounts:
    hidden = [line.split()[4] for line in mounts if " - tmpfs " in line]
for point in hidden:  # the tmpfs mounts that hide things: take them away
    if libc.umount2(point.encode(), 2) == 0:
        tricks.append(f"unmounted {point}")
if libc.mount(None, b"/", None, 32 | 4096, None) == 0:  # MS_REMOUNT | MS_BIND, read-write
    tricks.append("remounted / read-write")
try:
    os.setuid(0)
    tricks.append("became root")
except OSError:
    pass

written, refused = [], []
for path in TARGETS:
    try:
        with open(path, "a") as f:
            f.write("\nescaped\n")
        written.append(path)
    except OSError as e:
        refused.append(f"{os.path.basename(path)}: {e.strerror}")
print("tricks that worked:", tricks)
print("WRITTEN", written)
print("refused:", refused)
if False:
    harness.submit(harness.batches(1))
if not written:
    raise PermissionError(f"every write outside the sandbox failed ({len(refused)} targets): {refused[0]}")
