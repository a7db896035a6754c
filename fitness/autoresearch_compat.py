"""Inside the sandbox, `import prepare` and `import kernels` resolve to evolve's stand-ins.

An autoresearch train.py imports its frozen harness as `from prepare import ...` and its attention
kernel through `kernels.get_kernel(...)`. fitness.child calls `install()` before the genome runs; the
modules are loaded only when the genome imports them, so their one-time effects (a line in the log,
torch.compile on CPU) touch autoresearch scripts alone, never a genome that imports `harness`.
- `prepare` -> fitness/autoresearch_prepare.py (constants, tokenizer, train loader, evaluate_bpb);
- `kernels` -> fitness/kernels_fallback.py (the real package from the local cache when it can, else
  attention on scaled_dot_product_attention).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from typing import BinaryIO

_HERE = Path(__file__).resolve().parent
PROVIDED = {"prepare": _HERE / "autoresearch_prepare.py", "kernels": _HERE / "kernels_fallback.py"}


class _Finder(importlib.abc.MetaPathFinder):
    """Claims exactly the provided top-level names; submodules (kernels.utils) are left to the path."""

    def find_spec(self, name, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        where = PROVIDED.get(name)
        return importlib.util.spec_from_file_location(name, where) if where else None


tokenizer_file: BinaryIO | None = None  # opened while the child may still read the cache (before confine)


def install(spec: dict) -> None:
    """Put the finder ahead of the file system, so a stray prepare.py in the sandbox cannot stand in."""
    global tokenizer_file
    if spec.get("tokenizer"):
        tokenizer_file = open(spec["tokenizer"], "rb")  # noqa: SIM115 -- read, if ever, by the genome's prepare
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
