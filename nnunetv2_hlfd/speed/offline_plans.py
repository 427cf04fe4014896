"""Real nnU-Net plans without a dataset: nnU-Net's own experiment planners run on a synthetic
KiTS-like dataset fingerprint, so patch, batch, stages and widths are what nnU-Net would plan."""

from __future__ import annotations

import contextlib
import copy
import io
import tempfile
from pathlib import Path

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import save_json
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import (
    nnUNetPlannerResEncL,
)

from nnunetv2_hlfd.models.model_plans import total_stride
from nnunetv2_hlfd.utilities.cores import cores_available
from nnunetv2_hlfd.utilities.environment import temporary_environment

PLANNERS = {"default": ExperimentPlanner, "ResEncL": nnUNetPlannerResEncL}
DATASET_NAME = "Dataset990_KiTSLikeFingerprint"
LABELS = {"background": 0, "kidney": 1, "tumor": 2}
NUM_CASES = 200


def kits_like_fingerprint(
    num_cases: int = NUM_CASES, shape: tuple[int, int, int] = (128, 512, 512), spacing: float = 0.78, seed: int = 0
) -> dict:
    """Abdominal CT as in KiTS: about `shape` voxels at about `spacing` mm, varying per case."""
    rng = np.random.default_rng(seed)
    slices = np.maximum(1, np.round(shape[0] * rng.uniform(0.75, 1.25, num_cases)))
    spacings = spacing * rng.uniform(0.9, 1.1, num_cases)
    intensities = {
        "mean": 100.0,
        "median": 105.0,
        "std": 75.0,
        "min": -1000.0,
        "max": 3000.0,
        "percentile_00_5": -80.0,
        "percentile_99_5": 300.0,
    }
    return {
        "spacings": [[float(s)] * 3 for s in spacings],
        "shapes_after_crop": [[int(z), *shape[1:]] for z in slices],
        "median_relative_size_after_cropping": 1.0,
        "foreground_intensity_properties_per_channel": {"0": intensities},
    }


def _dataset_json(num_cases: int) -> dict:
    # "dataset" lists the cases explicitly and the reader is named, so the planner opens no image.
    cases = {
        f"case_{i:03d}": {"images": [f"imagesTr/case_{i:03d}_0000.nii.gz"], "label": f"labelsTr/case_{i:03d}.nii.gz"}
        for i in range(num_cases)
    }
    return {
        "channel_names": {"0": "CT"},
        "labels": LABELS,
        "numTraining": num_cases,
        "file_ending": ".nii.gz",
        "overwrite_image_reader_writer": "SimpleITKIO",
        "dataset": cases,
    }


def plan(planner: str = "default", fingerprint: dict | None = None) -> tuple[dict, dict]:
    """(plans, dataset_json) as `nnUNetv2_plan_experiment -pl <planner>` would write them."""
    fingerprint = fingerprint or kits_like_fingerprint()
    dataset_json = _dataset_json(len(fingerprint["spacings"]))
    with tempfile.TemporaryDirectory() as workdir:
        raw, preprocessed = Path(workdir, "raw"), Path(workdir, "preprocessed")
        for folder in (raw, preprocessed):
            (folder / DATASET_NAME).mkdir(parents=True)
        save_json(dataset_json, str(raw / DATASET_NAME / "dataset.json"))
        save_json(fingerprint, str(preprocessed / DATASET_NAME / "dataset_fingerprint.json"))
        # nnU-Net reads its folders from the environment at call time (nnunetv2.paths); its planner
        # also uses nnUNet_n_proc_DA as a thread count, and 0 (valid for training: no workers) fails there.
        with (
            temporary_environment(
                nnUNet_raw=str(raw), nnUNet_preprocessed=str(preprocessed), nnUNet_n_proc_DA=str(cores_available())
            ),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            plans = PLANNERS[planner](DATASET_NAME).plan_experiment()
    return copy.deepcopy(plans), {k: v for k, v in dataset_json.items() if k != "dataset"}


def scaled_down(plans: dict, configuration: str, patch_factor: float = 1.0, batch_size: int | None = None) -> dict:
    """The same network (stages, widths, strides) on a smaller patch and batch, for a CPU.

    Each patch axis is divided by `patch_factor`'s inverse and kept a multiple of the
    network's total stride, at least twice it, so no stage shrinks to a single voxel
    (instance norm cannot train on one).
    """
    plans = copy.deepcopy(plans)
    config = plans["configurations"][configuration]
    strides = total_stride(config["architecture"]["arch_kwargs"]["strides"], len(config["patch_size"]))
    config["patch_size"] = [
        int(max(2 * s, round(p * patch_factor / s) * s)) for p, s in zip(config["patch_size"], strides)
    ]
    if batch_size is not None:
        config["batch_size"] = batch_size
    return plans
