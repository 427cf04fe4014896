"""Timing helpers shared by `nnunetv2_hlfd speed` and the evaluation commands: callables timed side by side
in interleaved rounds, torch's peak memory during a call, and torch's CPU threads for a block.

A leaf module (torch only, nothing of this package), so timing a model never imports the trainers.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import itertools
import os
import time
from collections.abc import Callable

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile
from torch.utils.benchmark.utils.common import Measurement, TaskSpec

__all__ = ["default_device", "peak_memory", "time_side_by_side", "torch_threads"]


def default_device() -> str:
    """The device a command runs on where none is given: the GPU where torch sees one, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def torch_threads(count: int | None):
    """CPU threads for a block: on a CPU shared with other jobs, OpenMP threads beyond the free
    cores spin and slow every step many-fold, so benchmarks and tests there use one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count or previous)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # a step is done when its kernels are
    return time.perf_counter()


def time_side_by_side(
    measured: dict[str, Callable[[], object]], device: torch.device, warmup: int, steps: int
) -> dict[str, Measurement]:
    """Each callable once per round, `warmup` rounds discarded; medians by torch.utils.benchmark."""
    times: dict[str, list[float]] = {name: [] for name in measured}
    for round_index in range(warmup + steps):
        for name, run in measured.items():
            start = _clock(device)
            run()
            if round_index >= warmup:
                times[name].append(_clock(device) - start)
    return {
        name: Measurement(1, t, TaskSpec(stmt=name, setup="", num_threads=torch.get_num_threads()))
        for name, t in times.items()
    }


def peak_memory(run: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated by torch during `run` above what was allocated before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    # CPU: every allocation and free the profiler recorded, in time order; their running sum peaks where torch's
    # live CPU memory did. Read from its raw events: profiler.events() builds a Python object per operator, which
    # for a five-fold ensemble's volume took 94 s and gigabytes (the raw events: 5 s).
    if not torch.cuda.is_available():  # else its log prints "gpuGetDeviceCount failed" on a machine without a GPU
        os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # above its highest level: the profiler's own log off
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        run()
    changes = sorted(
        (event.start_ns(), event.nbytes())
        for event in profiler.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type() == DeviceType.CPU
    )
    del profiler
    _return_freed_memory()
    return max(itertools.accumulate(nbytes for _, nbytes in changes), default=0)


def _return_freed_memory() -> None:
    """Hand the profiler's freed record back to the system: glibc kept it, and a process that profiled one
    volume after another grew by about 1 GiB per five-fold ensemble's volume until it was killed for memory."""
    gc.collect()  # the profiler's record sits in reference cycles
    with contextlib.suppress(OSError, AttributeError):  # not glibc (macOS, musl): nothing to hand back
        ctypes.CDLL("libc.so.6").malloc_trim(0)
