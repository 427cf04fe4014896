"""The deployment comparison's timing: every configuration predicts every whole test volume through nnU-Net's
predictor (`timing.prediction.load_predictor`), from the image as the plans' reader reads it to the segmentation
on its grid, timed in interleaved rounds (`nnunetv2_hlfd.utilities.timing.time_side_by_side`) with its peak memory."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from nnunetv2_hlfd.evaluation.deployment.held_out import HeldOutSet
from nnunetv2_hlfd.evaluation.model_folders import BenchmarkDataset
from nnunetv2_hlfd.evaluation.timing.prediction import MIB, load_predictor, nnunet_thread_count
from nnunetv2_hlfd.utilities.timing import peak_memory, time_side_by_side


@dataclass(frozen=True)
class Measured:
    """One configuration's timings (seconds of each round, per case) and peak memory (MiB, per case)."""

    configuration: object  # a comparison.Configuration: name, folder, model, folds, mirroring
    mirror_axes: tuple[int, ...] | None
    seconds: dict[str, list[float]]
    memory_mib: dict[str, float]

    @property
    def mirrored_passes(self) -> int:
        """Network passes per window and member: nnU-Net's predictor runs the window and every
        combination of flips along its mirror axes (2d: 4, 3d: 8); 1 without mirroring."""
        axes = self.mirror_axes if self.configuration.mirroring else None
        return 2 ** len(axes) if axes else 1

    @property
    def passes_per_window(self) -> int:
        return len(self.configuration.folds) * self.mirrored_passes

    @property
    def round_seconds(self) -> list[float]:
        """Each round's seconds over all cases, so rounds of two configurations compare the same work."""
        return [sum(times) for times in zip(*self.seconds.values())]


def predict(predictor, image, properties: dict):
    """nnU-Net's prediction of one image: the segmentation on the image's grid. Its preprocessing writes
    into the properties it is given, so it gets a copy."""
    return predictor.predict_single_npy_array(image, copy.deepcopy(properties), None, None, False)


def measure_test_volumes(
    chosen: Sequence,
    test_set: HeldOutSet,
    dataset: BenchmarkDataset,
    device: torch.device,
    repetitions: int,
    predictions: Path,
) -> tuple[list[Measured], int]:
    """Every configuration on every test case, one case in memory at a time: (measurements, threads)."""
    reader = dataset.plans_manager.image_reader_writer_class()
    print(f"Loading {', '.join(c.name for c in chosen)} on {device.type}")
    predictors = {c.name: load_predictor(c.model, c.folds, device, c.mirroring) for c in chosen}
    seconds = {c.name: {} for c in chosen}
    memory = {c.name: {} for c in chosen}
    for c in chosen:
        (predictions / c.folder).mkdir(parents=True)
    with nnunet_thread_count(device):
        threads = torch.get_num_threads()
        for index, (case, files) in enumerate(test_set.cases.items()):
            print(f"Case {case} ({index + 1} of {len(test_set.cases)}): {repetitions} timed round(s)")
            image, properties = reader.read_images([str(f) for f in files])
            calls = {
                name: functools.partial(predict, predictor, image, properties) for name, predictor in predictors.items()
            }
            if index == 0:
                for call in calls.values():
                    call()  # warm-up, untimed
            for c in chosen:
                segmentation = {}
                memory[c.name][case] = peak_memory(store_result(calls[c.name], segmentation), device) / MIB
                reader.write_seg(
                    segmentation["result"], str(predictions / c.folder / f"{case}{test_set.file_ending}"), properties
                )
            for name, timing in time_side_by_side(calls, device, warmup=0, steps=repetitions).items():
                seconds[name][case] = list(timing.times)
    return [
        Measured(c, predictors[c.name].allowed_mirroring_axes, seconds[c.name], memory[c.name]) for c in chosen
    ], threads


def store_result(call: Callable[[], object], into: dict) -> Callable[[], None]:
    return lambda: into.__setitem__("result", call())
