"""What a deployment needs in memory: the weights plus the working memory of one prediction, measured as
the peak resident size of a fresh process that loads the model and predicts one volume.

torch's allocations during a call (`nnunetv2_hlfd.utilities.timing.peak_memory`) leave out the weights, which are
allocated before it. So each configuration runs once more in a child process
(`python -m nnunetv2_hlfd.evaluation.deployment.memory`), which reports its peak resident size after the
prediction (VmHWM in /proc/self/status on Linux, where ru_maxrss keeps the forking parent's peak; ru_maxrss
elsewhere), its resident size after importing torch, the bytes of the weights it loaded and, on a GPU,
torch.cuda.max_memory_allocated since it started."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import resource
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["MEMORY_COUNTED", "fresh_process_peak", "load_and_predict"]

MIB = 2**20
MEMORY_COUNTED = (
    "the peak resident memory (VmHWM) of a fresh process that imports torch and nnU-Net, loads the "
    "configuration's weights and predicts the largest test case once: weights, working memory and the "
    "libraries (deployment.json's process_imports_mib: the process after importing torch)"
)
_RESULT_MARK = "deployment_memory: "


def _peak_rss_mib() -> float:
    """This process's peak resident size. Linux: VmHWM, the high-water mark of its own memory since the exec;
    ru_maxrss there keeps the forking parent's peak (a child of an 11 GiB parent read 11 GiB for a 35 MiB model)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)


def _current_rss_mib() -> float:
    """The resident size now (Linux's /proc/self/statm), not the peak: importing torch peaks above what stays."""
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / MIB


def fresh_process_peak(target: str, arguments: dict, search_path: Sequence[str] = (), timeout: float = 3600) -> dict:
    """Runs `target` ("module:function", called with `arguments`, returning {"weights_bytes": ...}) in a
    fresh Python process; {"process_peak_mib", "imports_mib", "weights_mib", "cuda_peak_mib"}."""
    environment = dict(os.environ)
    if search_path:
        environment["PYTHONPATH"] = os.pathsep.join([*search_path, environment.get("PYTHONPATH", "")])
    completed = subprocess.run(
        [sys.executable, "-m", __name__, target, json.dumps(arguments)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(_RESULT_MARK)]
    if completed.returncode != 0 or not lines:
        tail = "\n".join(completed.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"measuring the memory of {target} in a fresh process failed:\n{tail}")
    return json.loads(lines[-1][len(_RESULT_MARK) :])


def load_and_predict(model: dict, folds: list, mirroring: bool, device: str, images: list[str]) -> dict:
    """The deployment's work in the child: nnU-Net's predictor of the folds, one prediction of the images."""
    import torch
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_hlfd.evaluation.deployment.volume_timing import predict
    from nnunetv2_hlfd.evaluation.model_folders import ModelFolder
    from nnunetv2_hlfd.evaluation.timing.prediction import load_predictor, nnunet_thread_count

    folder = ModelFolder(**(model | {"path": Path(model["path"])}))
    predictor = load_predictor(folder, folds, torch.device(device), mirroring)
    weights = sum(t.numel() * t.element_size() for p in predictor.list_of_parameters for t in p.values())
    reader = PlansManager(str(folder.path / "plans.json")).image_reader_writer_class()
    image, properties = reader.read_images(images)
    with nnunet_thread_count(torch.device(device)):
        predict(predictor, image, properties)
    return {"weights_bytes": int(weights)}


def _child(target: str, arguments: str) -> None:
    module_name, function_name = target.split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    import torch  # the libraries count in the imports, not in the model's memory

    imports = _current_rss_mib()
    result = function(**json.loads(arguments))
    cuda_peak = torch.cuda.max_memory_allocated() / MIB if torch.cuda.is_initialized() else None
    measured = {
        "process_peak_mib": _peak_rss_mib(),
        "imports_mib": imports,
        "weights_mib": result["weights_bytes"] / MIB,
        "cuda_peak_mib": cuda_peak,
    }
    print(_RESULT_MARK + json.dumps(measured), flush=True)


if __name__ == "__main__":
    _child(*sys.argv[1:])
