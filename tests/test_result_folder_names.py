"""Every results folder the package names is the one nnU-Net's own helper names (get_output_folder), so the
benchmark, the teacher search and the study find what nnUNetv2_train wrote there."""

from __future__ import annotations

from pathlib import Path

import pytest
from nnunetv2.utilities import file_path_utilities

from nnunetv2_hlfd.evaluation.model_folders import BenchmarkDataset, parse_model
from nnunetv2_hlfd.study.grid import StudySettings, fold_folder
from nnunetv2_hlfd.training.teacher import (
    DEFAULT_TEACHER_TRAINER,
    TEACHER_CHECKPOINT_ENV,
    TEACHER_ENV,
    TEACHER_FOLDS_ENV,
    locate_teachers,
)

DATASET = "Dataset321_Folders"
PLANS = "nnUNetResEncUNetMPlans"  # not nnU-Net's default plans, so a folder built without them differs


@pytest.fixture
def results(tmp_path, monkeypatch) -> Path:
    # get_output_folder reads nnUNet_results from nnunetv2.paths at import time: its module's own copy is set
    monkeypatch.setattr(file_path_utilities, "nnUNet_results", str(tmp_path))
    return tmp_path


def nnunet_folder(trainer: str, configuration: str, fold: int | None = None) -> Path:
    return Path(file_path_utilities.get_output_folder(DATASET, trainer, PLANS, configuration, fold))


def test_the_benchmark_reads_a_model_from_nnunets_folder(results):
    dataset = BenchmarkDataset(DATASET, results / "preprocessed", results / DATASET, {}, None)
    model = parse_model(f"nnUNetTrainerStudent__{PLANS}", "nnUNetPlans", "3d_fullres", dataset)
    assert model.path == nnunet_folder("nnUNetTrainerStudent", "3d_fullres")


def test_the_default_teacher_is_found_in_nnunets_folder(results, monkeypatch):
    for variable in (TEACHER_ENV, TEACHER_FOLDS_ENV, TEACHER_CHECKPOINT_ENV):
        monkeypatch.delenv(variable, raising=False)
    expected = nnunet_folder(DEFAULT_TEACHER_TRAINER, "2d", fold=0)
    expected.mkdir(parents=True)
    (expected / "checkpoint_final.pth").touch()
    (source,) = locate_teachers(str(results), DATASET, PLANS, "2d", 0)
    assert source.fold_folder == expected


def test_the_study_trains_into_nnunets_folder(results):
    settings = StudySettings(DATASET, "2d", plans=PLANS, students=("nnUNetTrainerStudent",), folds=(3,))
    trainer = "nnUNetTrainerStudent"
    assert fold_folder(results / DATASET, settings, trainer, 3, seed=7) == nnunet_folder(
        settings.run_name(trainer, 7), "2d", fold=3
    )
