"""The shared timing helpers: interleaved rounds, peak memory, thread count for a block."""

import os
from pathlib import Path

import pytest
import torch

from nnunetv2_hlfd.utilities.timing import peak_memory, time_side_by_side, torch_threads

CPU = torch.device("cpu")


def test_time_side_by_side_runs_each_callable_once_per_round_and_drops_the_warmup():
    calls = []
    times = time_side_by_side({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, CPU, warmup=1, steps=3)
    assert calls == ["a", "b"] * 4
    assert {name: len(measurement.times) for name, measurement in times.items()} == {"a": 3, "b": 3}


def test_peak_memory_sees_an_allocation_made_during_the_call():
    assert peak_memory(lambda: torch.ones(4_000_000, dtype=torch.uint8), CPU) >= 4_000_000


def test_torch_threads_sets_the_count_for_the_block_only():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_cpu_peak_memory_is_the_peak_of_live_allocations_not_their_sum():
    def run():
        for _ in range(3):
            scratch = torch.ones(8_000_000, dtype=torch.uint8)  # freed before the next one is made
            del scratch
        kept = torch.ones(2_000_000, dtype=torch.uint8)
        return kept

    peak = peak_memory(run, CPU)
    assert 8_000_000 <= peak < 12_000_000


def test_cpu_peak_memory_counts_a_workspace_freed_inside_one_operator():
    # median partitions a copy of its input and frees it before it returns: a per-operator net reads 0 bytes
    values = torch.rand(1_000_000)

    assert peak_memory(values.median, CPU) >= values.numel() * values.element_size()


def _resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads the resident size from Linux's /proc")
def test_measuring_cpu_peak_memory_again_and_again_does_not_grow_the_process():
    # many small operators: the profiler's record of each call is far larger than the memory the call uses
    weights = torch.rand(64, 64)

    def run():
        x = torch.rand(8, 64)
        for _ in range(20_000):
            x = (x @ weights).tanh()

    peak_memory(run, CPU)
    before = _resident_bytes()
    for _ in range(5):
        peak_memory(run, CPU)
    assert _resident_bytes() - before < 50 * 2**20
