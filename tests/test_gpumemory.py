"""The trainer's reading of GPU memory through NVML (trainer.gpumemory). No machine here has an NVIDIA driver,
so the library is a stand-in written in Python that answers the C calls the way the driver documents them:
through the pointers it is handed, with NVML_ERROR_INSUFFICIENT_SIZE when the buffer is too small."""

from __future__ import annotations

import ctypes

import pytest

from trainer import gpumemory


class _Driver:
    """Two cards; card 0 runs processes 10 (2 GiB), 11 (unknown to the driver) and 12 (1 GiB); card 1 runs
    process 10 (3 GiB) and 40 others."""

    def __init__(self):
        self.cards = {0: [(10, 2 << 30), (11, gpumemory.NOT_AVAILABLE), (12, 1 << 30)], 1: [(10, 3 << 30)]}
        self.cards[1] += [(1000 + i, 1 << 20) for i in range(40)]

    def nvmlDeviceGetCount_v2(self, count):
        count._obj.value = len(self.cards)
        return 0

    def nvmlDeviceGetHandleByIndex_v2(self, index, handle):
        handle._obj.value = index + 1  # a non-null handle
        return 0

    def nvmlDeviceGetComputeRunningProcesses_v3(self, handle, count, infos):
        running = self.cards[handle.value - 1]  # the handle itself, as the C call takes it
        if count._obj.value < len(running):
            count._obj.value = len(running)
            return gpumemory.INSUFFICIENT_SIZE
        for i, (pid, used) in enumerate(running):
            infos[i].pid, infos[i].usedGpuMemory = pid, used
        count._obj.value = len(running)
        return 0


def test_a_process_tree_is_weighed_on_every_card_and_what_the_driver_cannot_say_counts_nothing():
    driver = _Driver()
    nvml = gpumemory.Nvml(driver)
    assert len(nvml.handles) == 2
    assert nvml.used_bytes({10, 11}) == 5 << 30  # both cards; 11's memory unknown
    assert nvml.used_bytes({12, 1039}) == (1 << 30) + (1 << 20)  # the 40th process on card 1: the buffer grew
    assert nvml.used_bytes(set()) == 0


def test_a_driver_error_is_raised_as_an_nvml_error():
    driver = _Driver()
    driver.nvmlDeviceGetComputeRunningProcesses_v3 = lambda handle, count, infos: 999  # NVML_ERROR_UNKNOWN
    nvml = gpumemory.Nvml(driver)
    with pytest.raises(gpumemory.NvmlError, match="NVML error 999"):
        nvml.used_bytes({10})


def test_no_driver_means_no_reading():
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        assert gpumemory.open_nvml() is None
    else:  # a machine with the driver: it must start
        assert gpumemory.open_nvml() is not None
