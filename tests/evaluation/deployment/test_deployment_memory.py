"""A deployment's memory, measured in a fresh process, includes its weights (torch's allocations
during a prediction do not)."""

from pathlib import Path

import torch

from nnunetv2_hlfd.evaluation.deployment.memory import fresh_process_peak

WEIGHTS_MIB = 64


def test_the_fresh_process_peak_includes_the_weights(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"weight": torch.ones(WEIGHTS_MIB * 2**20 // 4 // 1024, 1024)}, path)  # float32: 64 MiB
    measured = fresh_process_peak("memory_helpers:load_weights", {"path": str(path)}, [str(Path(__file__).parent)])
    assert measured["weights_mib"] == WEIGHTS_MIB
    assert measured["process_peak_mib"] >= measured["imports_mib"] + WEIGHTS_MIB  # the libraries and the weights
    assert measured["cuda_peak_mib"] is None


def test_the_fresh_process_peak_is_its_own_not_its_parents(tmp_path):
    # the parent peaks far above what the child needs, then frees it (as a deployment run's profiling does)
    path = tmp_path / "weights.pth"
    torch.save({"weight": torch.ones(4, 1024)}, path)
    parent_peak = torch.ones(1024 * 2**20, dtype=torch.uint8)  # 1 GiB, touched
    del parent_peak
    measured = fresh_process_peak("memory_helpers:load_weights", {"path": str(path)}, [str(Path(__file__).parent)])
    assert measured["process_peak_mib"] < measured["imports_mib"] + 512
