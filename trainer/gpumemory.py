"""GPU memory a set of processes holds, as the NVIDIA driver counts it (NVML, through ctypes: no new
dependency), read by the trainer's watchdog outside the child's reach.

The driver's count per process is what the process holds on the card: its CUDA context and everything its
allocator reserved, cached blocks included. So it is at least what the genome's own
`torch.cuda.max_memory_allocated()` would say (autoresearch's `peak_vram_mb`), and it is what decides
whether two children fit on one card. It is sampled (trainer.supervise looks every WATCH_EVERY_S), so a
spike shorter than that between two looks can be missed; an allocator that caches, as PyTorch's does, keeps
its peak reserved until the process ends.

Where there is no NVML (no NVIDIA driver: every CPU machine) `open_nvml` returns None and nothing is read.
"""

from __future__ import annotations

import ctypes
import functools
import logging

logger = logging.getLogger(__name__)
NOT_AVAILABLE = 2**64 - 1  # NVML_VALUE_NOT_AVAILABLE: the driver cannot say (e.g. some virtualised setups)
INSUFFICIENT_SIZE = 7  # NVML_ERROR_INSUFFICIENT_SIZE: more processes than the buffer held


class _ProcessInfo(ctypes.Structure):  # nvmlProcessInfo_t (the _v2 and _v3 calls' layout)
    _fields_ = [
        ("pid", ctypes.c_uint),
        ("usedGpuMemory", ctypes.c_ulonglong),
        ("gpuInstanceId", ctypes.c_uint),
        ("computeInstanceId", ctypes.c_uint),
    ]


class Nvml:
    """The driver's library, initialised, with its devices' handles."""

    def __init__(self, lib: ctypes.CDLL):
        count = ctypes.c_uint()
        _check(lib.nvmlDeviceGetCount_v2(ctypes.byref(count)), "nvmlDeviceGetCount_v2")
        self.handles = []
        for i in range(count.value):
            handle = ctypes.c_void_p()
            _check(lib.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(handle)), "nvmlDeviceGetHandleByIndex_v2")
            self.handles.append(handle)
        names = ("nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses_v2")
        self.running = next(getattr(lib, n) for n in names if hasattr(lib, n))

    def used_bytes(self, pids: set[int]) -> int:
        """Bytes of GPU memory that `pids` hold on all devices together (one process may use several)."""
        total = 0
        for handle in self.handles:
            for pid, used in self._processes(handle):
                if pid in pids and used != NOT_AVAILABLE:
                    total += used
        return total

    def _processes(self, handle) -> list[tuple[int, int]]:
        size = 16
        while True:
            count, infos = ctypes.c_uint(size), (_ProcessInfo * size)()
            code = self.running(handle, ctypes.byref(count), infos)
            if code == INSUFFICIENT_SIZE and size < 4096:
                size = max(size * 4, count.value)
                continue
            _check(code, "nvmlDeviceGetComputeRunningProcesses")
            return [(infos[i].pid, infos[i].usedGpuMemory) for i in range(count.value)]


class NvmlError(RuntimeError):
    pass


def _check(code: int, call: str) -> None:
    if code != 0:
        raise NvmlError(f"{call} returned NVML error {code}")


@functools.cache
def open_nvml() -> Nvml | None:
    """The driver's NVML, once per process; None where there is none (a CPU machine) or it will not start."""
    try:
        lib = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    try:
        _check(lib.nvmlInit_v2(), "nvmlInit_v2")
        return Nvml(lib)
    except (NvmlError, AttributeError, StopIteration) as e:
        logger.warning("GPU memory is not measured: the driver's NVML would not start (%s)", e)
        return None
