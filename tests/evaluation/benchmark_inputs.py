"""Benchmark inputs made from the ground truth: model folders whose "predictions" are the ground truth or a known
alteration of it, and the benchmark run on them (tests/evaluation/test_benchmark_scores.py and
test_benchmark_errors.py)."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from nnunet_runs import DATASET_NAME

from nnunetv2_hlfd.evaluation.benchmark import run_benchmark
from nnunetv2_hlfd.evaluation.model_folders import BenchmarkInputError
from nnunetv2_hlfd.evaluation.settings import BenchmarkSettings

ENDING = ".nii.gz"
KIDNEY, TUMOUR = 1, 2
TEACHER, STUDENT = "nnUNetTrainer", "nnUNetTrainerStudent"


def dataset_folder(preprocessed_root: Path) -> Path:
    return preprocessed_root / DATASET_NAME


def validation_cases(preprocessed_root: Path, fold: int) -> list[str]:
    return json.loads((dataset_folder(preprocessed_root) / "splits_final.json").read_text())[fold]["val"]


def read_ground_truth(preprocessed_root: Path, case: str) -> sitk.Image:
    return sitk.ReadImage(str(dataset_folder(preprocessed_root) / "gt_segmentations" / f"{case}{ENDING}"))


def write_like(array: np.ndarray, like: sitk.Image, path: Path) -> None:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(like.GetSpacing()), image.SetOrigin(like.GetOrigin()), image.SetDirection(like.GetDirection())
    sitk.WriteImage(image, str(path))


def tumour_called_kidney(labels: np.ndarray) -> np.ndarray:
    return np.where(labels == TUMOUR, KIDNEY, labels)


def add_model(
    results_root: Path,
    preprocessed_root: Path,
    trainer: str,
    folds=(0,),
    alter=lambda labels: labels,
    configuration: str = "2d",
) -> Path:
    """A model folder as nnU-Net leaves it, with `alter(ground truth)` as every validation prediction."""
    model = results_root / DATASET_NAME / f"{trainer}__nnUNetPlans__{configuration}"
    model.mkdir(parents=True)
    shutil.copy(dataset_folder(preprocessed_root) / "nnUNetPlans.json", model / "plans.json")
    shutil.copy(dataset_folder(preprocessed_root) / "dataset.json", model / "dataset.json")
    for fold in folds:
        validation = model / f"fold_{fold}" / "validation"
        validation.mkdir(parents=True)
        for case in validation_cases(preprocessed_root, fold):
            truth = read_ground_truth(preprocessed_root, case)
            write_like(alter(sitk.GetArrayFromImage(truth)), truth, validation / f"{case}{ENDING}")
    return model


def teacher_and_student(root: Path, preprocessed_root: Path) -> Path:
    """A perfect teacher and a student that calls every tumour voxel kidney, fold 0."""
    add_model(root, preprocessed_root, TEACHER)
    add_model(root, preprocessed_root, STUDENT, alter=tumour_called_kidney)
    return root


def settings(tmp_path: Path, **changes) -> BenchmarkSettings:
    base = BenchmarkSettings(
        dataset=DATASET_NAME,
        configuration="2d",
        trainers=(TEACHER, STUDENT),
        folds=(0,),
        speed=False,
        output=tmp_path / "benchmark",
    )
    return replace(base, **changes)


def benchmark(preprocessed_root: Path, results_root: Path, tmp_path: Path, **changes) -> Path:
    return run_benchmark(settings(tmp_path, **changes), preprocessed_root, results_root)


def refusal(preprocessed_root: Path, results_root: Path, tmp_path: Path, **changes) -> str:
    with pytest.raises(BenchmarkInputError) as error:
        benchmark(preprocessed_root, results_root, tmp_path, **changes)
    assert not (tmp_path / "benchmark").exists(), "a refused benchmark must not leave an output folder"
    return str(error.value)


def label_counts(preprocessed_root: Path, case: str) -> tuple[int, int]:
    labels = sitk.GetArrayFromImage(read_ground_truth(preprocessed_root, case))
    return int((labels == KIDNEY).sum()), int((labels == TUMOUR).sum())


def tumour_slices(preprocessed_root: Path, case: str, axis: int) -> int:
    labels = sitk.GetArrayFromImage(read_ground_truth(preprocessed_root, case))
    return int(np.moveaxis(labels == TUMOUR, axis, 0).any(axis=(1, 2)).sum())


def add_probabilities(model: Path, preprocessed_root: Path, cases: list[str], fold: int = 0) -> None:
    """nnU-Net's `<case>.npz` (validation with --npz) beside each prediction: one-hot of the ground
    truth, except that every tumour voxel has (background, kidney, tumour) = (0.13, 0.45, 0.42):
    its argmax is kidney, but its tumour probability is above the paper's 0.4."""
    for case in cases:
        truth = sitk.GetArrayFromImage(read_ground_truth(preprocessed_root, case))
        probabilities = np.stack([(truth == label).astype(np.float32) for label in (0, KIDNEY, TUMOUR)])
        probabilities[:, truth == TUMOUR] = np.array([0.13, 0.45, 0.42], dtype=np.float32)[:, None]
        np.savez_compressed(model / f"fold_{fold}" / "validation" / f"{case}.npz", probabilities=probabilities)


def student_folder(results_root: Path) -> Path:
    return results_root / DATASET_NAME / f"{STUDENT}__nnUNetPlans__2d"


def teacher_folder(results_root: Path) -> Path:
    return results_root / DATASET_NAME / f"{TEACHER}__nnUNetPlans__2d"
