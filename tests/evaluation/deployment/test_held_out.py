"""The deployment comparison's test set checks on small files written here (no model, no nnU-Net run):
a training case under a new name is found by its content, and every label is checked up front."""

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_hlfd.evaluation.deployment.held_out import (
    copied_training_cases,
    label_problems,
    read_held_out_set,
    training_files,
)
from nnunetv2_hlfd.evaluation.label_maps import read_segmentation
from nnunetv2_hlfd.evaluation.model_folders import BenchmarkDataset, BenchmarkInputError

NAME = "Dataset993_Tiny"
SPACING = (0.8, 0.8, 2.0)  # SimpleITK's (x, y, z)


def tiny_dataset(root: Path) -> BenchmarkDataset:
    preprocessed = root / "preprocessed" / NAME
    (preprocessed / "gt_segmentations").mkdir(parents=True)
    dataset_json = {
        "labels": {"background": 0, "kidney": 1, "tumor": 2},
        "channel_names": {"0": "CT"},
        "file_ending": ".nii.gz",
    }
    plans = PlansManager({"image_reader_writer": "SimpleITKIO", "plans_name": "nnUNetPlans", "configurations": {}})
    return BenchmarkDataset(NAME, preprocessed, root / "results" / NAME, dataset_json, plans)


def write(array: np.ndarray, path: Path, spacing=SPACING, origin=(0.0, 0.0, 0.0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing), image.SetOrigin(origin)
    sitk.WriteImage(image, str(path))
    return path


def case_arrays(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(6, 10, 12)).astype(np.float32)
    label = (rng.random((6, 10, 12)) * 3).astype(np.uint8)
    return image, label


def write_case(folder: Path, case: str, seed: int, **label_changes) -> None:
    image, label = case_arrays(seed)
    write(image, folder / "images" / f"{case}_0000.nii.gz")
    write(label_changes.pop("array", label), folder / "labels" / f"{case}.nii.gz", **label_changes)


@pytest.fixture
def dataset(tmp_path) -> BenchmarkDataset:
    return tiny_dataset(tmp_path)


def held_out(tmp_path, dataset):
    test_set, problems = read_held_out_set(tmp_path / "test" / "images", tmp_path / "test" / "labels", dataset)
    assert problems == []
    return test_set


# --- a training case under another name --------------------------------------------------


def raw_training_case(tmp_path, seed: int) -> Path:
    raw = tmp_path / "raw"
    image, label = case_arrays(seed)
    write(image, raw / NAME / "imagesTr" / "kidney_000_0000.nii.gz")
    write(label, raw / NAME / "labelsTr" / "kidney_000.nii.gz")
    return raw


def test_a_byte_copy_of_a_training_image_under_a_new_name_is_refused_naming_both_files(tmp_path, dataset):
    raw = raw_training_case(tmp_path, seed=1)
    write_case(tmp_path / "test", "heldout_000", seed=2)
    copied = tmp_path / "test" / "images" / "heldout_001_0000.nii.gz"
    shutil.copy(raw / NAME / "imagesTr" / "kidney_000_0000.nii.gz", copied)
    labels = tmp_path / "test" / "labels"
    shutil.copy(labels / "heldout_000.nii.gz", labels / "heldout_001.nii.gz")
    problems = copied_training_cases(held_out(tmp_path, dataset), training_files(dataset, raw), dataset)
    [problem] = problems
    assert str(copied) in problem and str(raw / NAME / "imagesTr" / "kidney_000_0000.nii.gz") in problem
    assert "training case under another name" in problem


def test_a_training_label_saved_again_with_other_bytes_is_found_by_its_voxels(tmp_path, dataset):
    raw = raw_training_case(tmp_path, seed=1)
    _, label = case_arrays(seed=1)
    gt = write(label, dataset.ground_truth / "kidney_000.nii.gz")
    write_case(tmp_path / "test", "heldout_000", seed=2, array=label)
    saved_again = tmp_path / "test" / "labels" / "heldout_000.nii.gz"
    with open(tmp_path / "test" / "labels" / "plain.nii", "wb") as plain, gzip.open(saved_again) as source:
        shutil.copyfileobj(source, plain)  # the same voxels, gzipped at another level: other bytes
    with open(tmp_path / "test" / "labels" / "plain.nii", "rb") as plain, gzip.open(saved_again, "wb", 1) as target:
        shutil.copyfileobj(plain, target)
    (tmp_path / "test" / "labels" / "plain.nii").unlink()
    assert saved_again.read_bytes() != gt.read_bytes()
    problems = copied_training_cases(held_out(tmp_path, dataset), training_files(dataset, raw), dataset)
    assert any(str(saved_again) in p and str(gt) in p for p in problems), problems


def test_other_cases_are_not_taken_for_training_cases(tmp_path, dataset):
    raw = raw_training_case(tmp_path, seed=1)
    write_case(tmp_path / "test", "heldout_000", seed=2)
    assert copied_training_cases(held_out(tmp_path, dataset), training_files(dataset, raw), dataset) == []


# --- the labels, all checked before anything is predicted ---------------------------------


def test_every_label_problem_is_listed_at_once_before_prediction(tmp_path, dataset):
    _, label = case_arrays(seed=3)
    test = tmp_path / "test"
    write_case(test, "good", seed=3)
    write_case(test, "value", seed=4, array=np.where(label == 2, 7, label).astype(np.uint8))
    write_case(test, "spacing", seed=5, spacing=(0.8, 0.8, 5.0))
    write_case(test, "origin", seed=6, origin=(0.0, 0.0, 40.0))
    write_case(test, "shape", seed=7, array=label[:4])
    problems = label_problems(held_out(tmp_path, dataset), dataset)
    assert len(problems) == 4, problems
    by_case = {case: [p for p in problems if f"{case}.nii.gz" in p] for case in ("value", "spacing", "origin", "shape")}
    assert "holds the values 7, which are not labels of" in by_case["value"][0]
    assert "has the spacing" in by_case["spacing"][0] and "another grid" in by_case["spacing"][0]
    assert "has the origin" in by_case["origin"][0]
    assert "has shape (4, 10, 12) but its image" in by_case["shape"][0]


def truncated_copy(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) * 2 // 3])
    return target


def test_a_truncated_label_is_refused_naming_the_file(tmp_path, dataset):
    test = tmp_path / "test"
    write_case(test, "heldout_000", seed=3)
    label = test / "labels" / "heldout_000.nii.gz"
    truncated_copy(Path(shutil.copy(label, tmp_path / "whole.nii.gz")), label)
    [problem] = label_problems(held_out(tmp_path, dataset), dataset)
    assert f"cannot read {label}" in problem and "truncated" in problem


def test_a_truncated_prediction_is_refused_naming_the_file(tmp_path, dataset):
    _, label = case_arrays(seed=3)
    whole = write(label, tmp_path / "whole.nii.gz")
    prediction = truncated_copy(whole, tmp_path / "case_000.nii.gz")
    reader = dataset.plans_manager.image_reader_writer_class()
    with pytest.raises(BenchmarkInputError) as error:
        read_segmentation(prediction, reader, "rerun nnU-Net's validation")
    assert f"cannot read {prediction}" in str(error.value) and "rerun nnU-Net's validation" in str(error.value)
    assert read_segmentation(whole, reader).array.shape == label.shape
