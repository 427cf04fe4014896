"""The benchmark's timing of every model: devices, interleaved rounds, peak memory and the volume summary."""

import argparse

import pytest
import torch

from nnunetv2_hlfd.evaluation.command import add_parser, settings_from_args
from nnunetv2_hlfd.evaluation.timing import model_speed
from nnunetv2_hlfd.evaluation.timing.prediction import volume_summary
from nnunetv2_hlfd.utilities.provenance import hardware_name


def parse(*argv: str):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["benchmark", "-d", "991", "-c", "2d", *argv])


@pytest.mark.parametrize("gpu, expected", [(True, ("cpu", "cuda")), (False, ("cpu",))])
def test_default_devices_add_the_gpu_where_torch_sees_one(monkeypatch, gpu, expected):
    monkeypatch.setattr("torch.cuda.is_available", lambda: gpu)
    assert model_speed.timing_devices(settings_from_args(parse()).devices) == expected


def test_devices_named_on_the_command_line_are_kept_even_with_a_gpu(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert model_speed.timing_devices(settings_from_args(parse("--device", "cpu")).devices) == ("cpu",)


def test_volume_latency_is_the_median_over_cases_of_each_cases_median():
    # Per-case medians: a of (1, 3, 2) is 2, b of (5,) is 5, c of (0.5, 0.7) is 0.6;
    # their median is 2 (not the mean 2.53, nor the first case alone).
    summary = volume_summary({"a": (10.0, [1.0, 3.0, 2.0]), "b": (30.0, [5.0]), "c": (20.0, [0.5, 0.7])})
    assert summary["volume_latency_s"] == pytest.approx(2.0)
    assert summary["volume_peak_memory_mib"] == 30.0  # the largest case's
    assert (summary["cases"], summary["n_cases"]) == ("a b c", 3)


class Named:
    def __init__(self, label):
        self.label = label


def mib_chunks(count: int, mib: int = 8) -> list[torch.Tensor]:
    return [torch.ones(mib * 2**18) for _ in range(count)]  # float32: 4 bytes each


def fake_model_calls(log: list, allocate_mib: int = 0):
    """model_speed.model_calls without models: each call logs its name and allocates `allocate_mib`."""

    def calls(model, fold, cases, dataset, device, volumes):
        def call(name):
            def run():
                log.append(f"{model.label}|{name}")
                torch.ones(allocate_mib * 2**18)

            return run

        return {name: call(name) for name in ("patch", *cases)}

    return calls


def test_repetitions_interleave_the_models_round_by_round(monkeypatch):
    log = []
    monkeypatch.setattr(model_speed, "model_calls", fake_model_calls(log))
    rows = model_speed.measure_speed([Named("a"), Named("b")], 0, ["c1"], None, torch.device("cpu"), repetitions=3)
    one_round = ["a|patch", "a|c1", "b|patch", "b|c1"]
    assert log == one_round * 4  # the untimed warm-up (peak memory), then three rounds
    assert [len(row["patch_latencies_ms"]) for row in rows] == [3, 3]
    assert rows[0]["hardware"] == hardware_name(torch.device("cpu")) != "x86_64"


def test_cpu_peak_memory_counts_a_call_that_reuses_memory_the_process_already_holds(monkeypatch):
    # freed memory the C allocator keeps: the resident size, measured before, did not rise (read 0 MiB)
    mib_chunks(24), torch.ones(96 * 2**18)
    monkeypatch.setattr(model_speed, "model_calls", fake_model_calls([], allocate_mib=64))
    row = model_speed.measure_speed([Named("a")], 0, ["c1"], None, torch.device("cpu"), repetitions=1)[0]
    assert row["patch_peak_memory_mib"] == pytest.approx(64, rel=0.05)
    assert row["volume_peak_memory_mib"] == pytest.approx(64, rel=0.05)
