"""nnU-Net's predictor as both evaluation commands load and time it: nnUNetv2_predict's defaults, nnU-Net's own
CPU thread count, and the summary of its per-volume timings (median latency, largest peak memory).

Peak memory is torch's own allocations during the call above those before it
(`nnunetv2_hlfd.utilities.timing.peak_memory`): on a GPU from torch.cuda.max_memory_allocated, on the CPU from the
profiler's memory events (the process's resident size, which the allocator keeps, would read 0 for a call that fits
into memory the process already holds).
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
from collections.abc import Sequence

import torch
from nnunetv2.configuration import default_num_processes

from nnunetv2_hlfd.evaluation.model_folders import ModelFolder
from nnunetv2_hlfd.utilities.environment import temporary_environment
from nnunetv2_hlfd.utilities.trainer_search import trainer_search_path

MIB = 2**20
MEMORY_MEASURES = {  # both by nnunetv2_hlfd.utilities.timing.peak_memory
    "cuda": "peak of torch.cuda.max_memory_allocated during the call above the memory allocated before it",
    "cpu": "peak of torch's CPU allocations during the call (profiler memory events) above those before it",
}


def load_predictor(model: ModelFolder, folds: Sequence[int | str], device: torch.device, mirroring: bool = True):
    """nnU-Net's predictor of these folds of a model folder (several: nnU-Net's fold ensemble, which
    averages the folds' logits), with nnUNetv2_predict's defaults: tile step 0.5, Gaussian weighting,
    test-time mirroring along the axes the checkpoint allows unless `mirroring` is off, everything on
    the device where it is a GPU."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    # nnU-Net 2.8 prints that perform_everything_on_device=True is cuda-only on every other device, even when
    # it is False, and narrates its trainer search: nothing a user can act on, once per model loaded
    with contextlib.redirect_stdout(io.StringIO()):
        predictor = nnUNetPredictor(
            tile_step_size=0.5,
            use_gaussian=True,
            use_mirroring=mirroring,
            perform_everything_on_device=device.type == "cuda",
            device=device,
            verbose=False,
            verbose_preprocessing=False,
            allow_tqdm=False,
        )
    # nnU-Net looks the trainer class up itself: where the benchmark found it (model_folders.trainer_class)
    with temporary_environment(nnUNet_extTrainer=trainer_search_path()), contextlib.redirect_stdout(io.StringIO()):
        predictor.initialize_from_trained_model_folder(
            str(model.path), use_folds=tuple(folds), checkpoint_name=model.checkpoint(folds[0]).name
        )
    return predictor


@contextlib.contextmanager
def nnunet_thread_count(device: torch.device):
    """The CPU thread count nnU-Net's predictor sets for itself, for every timed call, so all measurements
    use the same threads."""
    previous = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(min(default_num_processes, previous))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def volume_summary(volumes: dict[str, tuple[float, list[float]]]) -> dict:
    """{case: (peak MiB, timed seconds)} to the volume measures: the median over the cases of
    each case's median latency, and the largest peak memory."""
    case_latencies = {case: statistics.median(seconds) for case, (_, seconds) in volumes.items()}
    # the spread over rounds: each round's median over the cases
    round_medians = [statistics.median(times) for times in zip(*(seconds for _, seconds in volumes.values()))]
    return {
        "cases": " ".join(volumes),
        "n_cases": len(volumes),
        "volume_latency_s": statistics.median(case_latencies.values()),
        "volume_latency_min_s": min(round_medians),
        "volume_latency_max_s": max(round_medians),
        "volume_peak_memory_mib": max(memory for memory, _ in volumes.values()),
        "volume_latency_s_per_case": json.dumps({case: round(s, 4) for case, s in case_latencies.items()}),
        "volume_latencies_s": json.dumps(
            {case: [round(s, 4) for s in seconds] for case, (_, seconds) in volumes.items()}
        ),
    }
