"""The shared timing helpers: interleaved rounds, peak memory, thread count for a block."""

import torch

from nnunetv2_hlfd.timing import peak_memory, time_side_by_side, torch_threads

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
