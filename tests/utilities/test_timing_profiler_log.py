"""The CPU memory measurement prints nothing of the profiler's own on a machine without a GPU (issue 22)."""

import os
import subprocess
import sys

MEASURE = """
import torch
from nnunetv2_hlfd.utilities.timing import peak_memory
print(peak_memory(lambda: torch.ones(1000) + 1, torch.device("cpu")))
"""


def test_cpu_peak_memory_prints_no_profiler_log_without_a_gpu():
    environment = {k: v for k, v in os.environ.items() if k != "KINETO_LOG_LEVEL"} | {"CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", MEASURE], env=environment, capture_output=True, text=True, timeout=300, check=True
    )
    assert int(result.stdout) > 0
    # the profiler's (kineto's) log lines, e.g. "ERROR:<time> ... DeviceProperties.cpp:56] gpuGetDeviceCount failed"
    assert "gpuGetDeviceCount" not in result.stderr and ".cpp:" not in result.stderr.replace("cpp_extension.py", "")
