"""The study names only datasets that exist, and plans only a dataset its id names alone (issue 22)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from study_helpers import FAKE_DATASET, fake_nnunet, fake_settings

from nnunetv2_hlfd.study.dataset_check import check_plannable, resolve_dataset
from nnunetv2_hlfd.study.runner import run_study


@pytest.fixture
def calls(tmp_path, monkeypatch):
    """The fake nnU-Net folders, and a stand-in for nnU-Net's planning that records being called."""
    calls = fake_nnunet(tmp_path, monkeypatch)
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    for command in ("nnUNetv2_plan_and_preprocess", "nnUNetv2_preprocess"):
        script = bin_folder / command
        script.write_text(f'#!/bin/sh\necho {command} "$@" >> {tmp_path / "planned.txt"}\n')
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_folder}:{os.environ['PATH']}")
    return calls


def environment() -> dict[str, str]:
    return {name: os.environ[name] for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}


def planned(tmp_path: Path) -> str:
    return (tmp_path / "planned.txt").read_text() if (tmp_path / "planned.txt").is_file() else ""


def test_a_mistyped_dataset_name_is_refused_naming_the_real_one_and_nothing_is_replanned(calls, tmp_path):
    plans_file = tmp_path / "nnUNet_preprocessed" / FAKE_DATASET / "nnUNetPlans.json"
    hand_edited = plans_file.read_text()
    with pytest.raises(ValueError, match=rf"'Dataset900_Typo' is not in .*did you mean -d {FAKE_DATASET}\?"):
        run_study(fake_settings(dataset="Dataset900_Typo"), show_progress=False)
    assert planned(tmp_path) == "" and not calls.exists()
    assert plans_file.read_text() == hand_edited
    assert not (tmp_path / "nnUNet_results" / "Dataset900_Typo").exists()


def test_an_unknown_dataset_is_refused_listing_the_datasets_there(calls):
    with pytest.raises(ValueError, match=rf"'Dataset123_None' is not in .*the datasets there are {FAKE_DATASET}"):
        resolve_dataset("Dataset123_None", environment())


def test_a_dataset_id_names_its_dataset(calls):
    assert resolve_dataset("900", environment()) == FAKE_DATASET


def test_an_id_shared_by_two_datasets_is_refused_naming_both(calls, tmp_path):
    (tmp_path / "nnUNet_raw" / "Dataset900_Other").mkdir()
    with pytest.raises(ValueError, match=rf"id 900 names 2 datasets \({FAKE_DATASET}, Dataset900_Other\)"):
        resolve_dataset("900", environment())


def test_a_dataset_whose_id_another_names_is_not_planned(calls, tmp_path):
    (tmp_path / "nnUNet_preprocessed" / FAKE_DATASET / "nnUNetPlans.json").unlink()
    (tmp_path / "nnUNet_results" / "Dataset900_Other").mkdir()
    with pytest.raises(ValueError, match=r"its id 900, which also names Dataset900_Other"):
        run_study(fake_settings(), show_progress=False)
    assert planned(tmp_path) == ""


def test_a_dataset_without_raw_data_is_not_planned(calls, tmp_path):
    (tmp_path / "nnUNet_preprocessed" / FAKE_DATASET / "nnUNetPlans.json").unlink()
    with pytest.raises(ValueError, match=r"cannot be planned: .*dataset.json does not exist"):
        run_study(fake_settings(), show_progress=False)
    assert planned(tmp_path) == ""


def test_a_dataset_with_raw_data_and_no_plans_is_planned_by_its_id(calls, tmp_path):
    raw = tmp_path / "nnUNet_raw" / FAKE_DATASET
    raw.mkdir()
    (raw / "dataset.json").write_text(json.dumps({"labels": {"background": 0}}))
    check_plannable(FAKE_DATASET, environment())  # no error: the id names this dataset alone
    (tmp_path / "nnUNet_preprocessed" / FAKE_DATASET / "nnUNetPlans.json").unlink()
    with pytest.raises(ValueError, match="trainer"):  # an unknown student stops the study after planning
        run_study(fake_settings(students=("nnUNetTrainerUnknown",)), show_progress=False)
    assert planned(tmp_path).startswith("nnUNetv2_plan_and_preprocess -d 900 ")
