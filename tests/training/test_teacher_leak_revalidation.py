"""The leak check reads what the teacher held out from a record that cannot grow (issue 22): nnU-Net's
`--val` after splits_final.json was rewritten adds the new split's validation cases beside the old ones,
so the validation folder alone would call every one of them held out."""

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from nnunet_runs import DATASET_ID, DATASET_NAME, run_command, with_own_log

from nnunetv2_hlfd.training.teacher import TeacherError, TeacherSource, open_teacher
from nnunetv2_hlfd.training.teacher_checks import check_leak, leak_problems, training_split_sizes


def fake_teacher(fold_folder: Path):
    return SimpleNamespace(
        source=TeacherSource(fold_folder, fold_folder / "checkpoint_final.pth"),
        plans_manager=SimpleNamespace(dataset_name=DATASET_NAME),
        configuration_manager=SimpleNamespace(data_identifier="nnUNetPlans_2d"),
        dataset_json={"file_ending": ".nii.gz"},
    )


def write_log(fold_folder: Path, name: str, lines: list[str]) -> None:
    fold_folder.mkdir(parents=True, exist_ok=True)
    (fold_folder / name).write_text("".join(f"2026-12-03 10:00:00.000000: {line}\n" for line in lines))


def write_training_log(fold_folder: Path, validation_cases: int, name: str = "training_log_2026_12_3_10_00_00.txt"):
    split = f"This split has 8 training and {validation_cases} validation cases."
    write_log(fold_folder, name, [split, "Epoch 0", "Current learning rate: 0.01"])


def write_validation_outputs(fold_folder: Path, cases) -> None:
    (fold_folder / "validation").mkdir(parents=True, exist_ok=True)
    for case in cases:
        (fold_folder / "validation" / f"{case}.nii.gz").touch()


def test_split_sizes_are_read_from_the_logs_of_runs_that_trained_only(tmp_path):
    write_training_log(tmp_path, 2)
    write_log(tmp_path, "training_log_2026_12_4_10_00_00.txt", ["This split has 6 training and 4 validation cases."])
    assert training_split_sizes(tmp_path) == {"training_log_2026_12_3_10_00_00.txt": 2}


def test_more_validation_outputs_than_the_trained_split_held_out_are_refused(tmp_path):
    write_training_log(tmp_path / "fold_0", 2)
    write_validation_outputs(tmp_path / "fold_0", ["a", "b", "c", "d"])  # a, b at training; c, d by a later --val
    check = check_leak(fake_teacher(tmp_path / "fold_0"), {"c", "d"}, None)
    assert "holds 4 validation outputs, but the split it trained with had 2 validation cases" in check.outgrown
    (problem,) = leak_problems(check, fake_teacher(tmp_path / "fold_0"))
    assert "may have trained on any of the 2 validation cases" in problem and "HLFD_ALLOW_TEACHER_LEAK=1" in problem


def test_validation_outputs_of_the_trained_split_size_decide_the_leak_as_before(tmp_path):
    write_training_log(tmp_path / "fold_0", 2)
    write_validation_outputs(tmp_path / "fold_0", ["a", "b"])
    check = check_leak(fake_teacher(tmp_path / "fold_0"), {"a", "b"}, None)
    assert not check.outgrown and not check.leaked and leak_problems(check, fake_teacher(tmp_path / "fold_0")) == []


def test_training_runs_on_splits_of_different_sizes_are_refused(tmp_path):
    write_training_log(tmp_path / "fold_0", 2)
    write_training_log(tmp_path / "fold_0", 3, name="training_log_2026_12_4_10_00_00.txt")  # resumed, split changed
    write_validation_outputs(tmp_path / "fold_0", ["a", "b", "c"])
    check = check_leak(fake_teacher(tmp_path / "fold_0"), {"a"}, None)
    assert "its training runs used splits of different sizes" in check.outgrown


# ------------------------------------------------------------ the user's path, with nnU-Net's own --val


@pytest.mark.integration
def test_revalidation_after_the_splits_were_rewritten_is_refused(teacher_2d, tmp_path, monkeypatch, rewritable_splits):
    from nnunetv2.run.run_training import get_trainer_from_args

    results = tmp_path / "results"
    teacher = results / DATASET_NAME / teacher_2d.parent.name
    shutil.copytree(teacher_2d.parent, teacher)
    shutil.rmtree(teacher / "fold_0" / "validation", ignore_errors=True)
    validate = ["nnUNetv2_train", str(DATASET_ID), "2d", "0", "--val", "-device", "cpu"]
    environment = {"nnUNet_results": str(results), "nnUNet_def_n_proc": "1"}
    run_command(validate, env=environment)  # what the end of the teacher's training writes
    folds = json.loads(rewritable_splits.read_text())
    trained_on = folds[0]["train"][:2]
    folds[0] = {"train": [c for c in folds[0]["train"] + folds[0]["val"] if c not in trained_on], "val": trained_on}
    rewritable_splits.write_text(json.dumps(folds))
    run_command(validate, env=environment)  # the user re-validates the teacher on the rewritten split
    assert trained_on[0] + ".nii.gz" in os.listdir(teacher / "fold_0" / "validation")

    monkeypatch.setenv("HLFD_TEACHER", str(teacher))
    student = get_trainer_from_args(str(DATASET_ID), "2d", 0, "nnUNetTrainerHLFD_tiny", device=torch.device("cpu"))
    with pytest.raises(TeacherError, match="may have trained on any of the 2 validation cases") as refusal:
        with_own_log(student).initialize()
    assert "but the split it trained with had 2 validation cases" in str(refusal.value)


@pytest.mark.integration
def test_teacher_validated_once_by_nnunet_is_checked_without_a_caveat(teacher_2d, tmp_path, nnunet_dirs):
    results = tmp_path / "results"
    teacher = results / DATASET_NAME / teacher_2d.parent.name
    shutil.copytree(teacher_2d.parent, teacher)
    shutil.rmtree(teacher / "fold_0" / "validation", ignore_errors=True)
    run_command(
        ["nnUNetv2_train", str(DATASET_ID), "2d", "0", "--val", "-device", "cpu"],
        env={"nnUNet_results": str(results), "nnUNet_def_n_proc": "1"},
    )
    splits = json.loads((nnunet_dirs["nnUNet_preprocessed"] / DATASET_NAME / "splits_final.json").read_text())
    loaded = open_teacher(TeacherSource(teacher / "fold_0", teacher / "fold_0" / "checkpoint_final.pth"))
    check = check_leak(loaded, set(splits[0]["val"]), str(nnunet_dirs["nnUNet_preprocessed"]))
    assert not check.leaked and not check.outgrown and not check.caveat
