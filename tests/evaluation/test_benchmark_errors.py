"""`nnunetv2_hlfd benchmark` refuses every bad input with an error that names it, before scoring, and keeps
what it did not write. No model is trained here (speed is switched off), so these tests take seconds."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from benchmark_inputs import (
    ENDING,
    STUDENT,
    TEACHER,
    TUMOUR,
    add_model,
    benchmark,
    dataset_folder,
    read_ground_truth,
    refusal,
    student_folder,
    teacher_and_student,
    teacher_folder,
    validation_cases,
    write_like,
)
from nnunet_runs import DATASET_NAME

from nnunetv2_hlfd.cli import main
from nnunetv2_hlfd.evaluation.model_folders import BenchmarkInputError
from nnunetv2_hlfd.utilities.output_folder import read_marker, staged

# --- refusals ----------------------------------------------------------------------------


def test_unknown_trainer_is_named_with_the_trained_ones(preprocessed_root, results_root, tmp_path):
    message = refusal(preprocessed_root, results_root, tmp_path, trainers=(TEACHER, STUDENT, "nnUNetTrainerTypo"))
    assert "nnUNetTrainerTypo" in message and f"{TEACHER}__nnUNetPlans" in message


def test_missing_fold_is_named_with_its_training_command(preprocessed_root, results_root, tmp_path):
    message = refusal(preprocessed_root, results_root, tmp_path, folds=(0, 1))
    assert f"{TEACHER} has no fold 1" in message and f"{STUDENT} has no fold 1" in message
    assert f"nnUNetv2_train {DATASET_NAME} 2d 1 -tr {STUDENT}" in message


def test_missing_predictions_are_named_not_skipped(preprocessed_root, results_root, tmp_path):
    missing_case = validation_cases(preprocessed_root, 0)[0]
    validation = results_root / DATASET_NAME / f"{STUDENT}__nnUNetPlans__2d" / "fold_0" / "validation"
    (validation / f"{missing_case}{ENDING}").unlink()
    message = refusal(preprocessed_root, results_root, tmp_path)
    assert f"{STUDENT} fold 0" in message and missing_case in message and "--run-missing-validation" in message
    assert f"nnUNetv2_train {DATASET_NAME} 2d 0 -tr {STUDENT} --val" in message


def test_run_missing_validation_runs_nnunets_validation_of_exactly_the_missing_fold(
    preprocessed_root, results_root, tmp_path, monkeypatch
):
    student_fold = results_root / DATASET_NAME / f"{STUDENT}__nnUNetPlans__2d" / "fold_0"
    predictions = tmp_path / "student_predictions"
    shutil.move(student_fold / "validation", predictions)
    (student_fold / "checkpoint_final.pth").touch()
    calls = []

    def nnunets_validation(dataset, configuration, fold, trainer, plans, only_run_validation, device):
        calls.append((dataset, configuration, fold, trainer, plans, only_run_validation))
        shutil.copytree(predictions, student_fold / "validation")

    monkeypatch.setattr("nnunetv2.run.run_training.run_training", nnunets_validation)
    output = benchmark(preprocessed_root, results_root, tmp_path, run_missing_validation=True)
    assert calls == [(DATASET_NAME, "2d", 0, STUDENT, "nnUNetPlans", True)]
    assert STUDENT in set(pd.read_csv(output / "per_case.csv")["trainer"])


def test_run_missing_validation_needs_a_finished_training(preprocessed_root, results_root, tmp_path):
    shutil.rmtree(results_root / DATASET_NAME / f"{STUDENT}__nnUNetPlans__2d" / "fold_0" / "validation")
    message = refusal(preprocessed_root, results_root, tmp_path, run_missing_validation=True)
    assert "checkpoint_final.pth does not exist" in message and "--c" in message


def test_prediction_of_a_case_outside_the_split_is_refused(preprocessed_root, results_root, tmp_path):
    validation = results_root / DATASET_NAME / f"{TEACHER}__nnUNetPlans__2d" / "fold_0" / "validation"
    shutil.copy(next(validation.glob(f"*{ENDING}")), validation / f"stranger{ENDING}")
    message = refusal(preprocessed_root, results_root, tmp_path)
    assert "stranger" in message and "splits_final.json" in message


def test_prediction_with_a_label_the_dataset_lacks_is_refused(preprocessed_root, results_root, tmp_path):
    shutil.rmtree(results_root / DATASET_NAME / f"{STUDENT}__nnUNetPlans__2d")
    add_model(results_root, preprocessed_root, STUDENT, alter=lambda labels: np.where(labels == TUMOUR, 7, labels))
    message = refusal(preprocessed_root, results_root, tmp_path)
    assert "the values 7, which" in message and f"{STUDENT}__nnUNetPlans__2d" in message


def test_prediction_of_another_shape_is_refused(preprocessed_root, results_root, tmp_path):
    shutil.rmtree(results_root / DATASET_NAME / f"{STUDENT}__nnUNetPlans__2d")
    add_model(results_root, preprocessed_root, STUDENT, alter=lambda labels: labels[:, :-1])
    assert "shape" in refusal(preprocessed_root, results_root, tmp_path)


def test_model_folder_whose_trainer_class_does_not_exist_is_refused_before_scoring(
    preprocessed_root, results_root, tmp_path, monkeypatch
):
    add_model(results_root, preprocessed_root, "nnUNetTrainerDefinedNowhere")

    def scoring(*args):
        raise AssertionError("cases were scored before the trainer classes were checked")

    monkeypatch.setattr("nnunetv2_hlfd.evaluation.benchmark.evaluate_cases", scoring)
    message = refusal(
        preprocessed_root, results_root, tmp_path, trainers=(TEACHER, STUDENT, "nnUNetTrainerDefinedNowhere")
    )
    assert "trainer class 'nnUNetTrainerDefinedNowhere' cannot be loaded" in message
    assert "nnUNet_extTrainer" in message and message.count("\n  - ") == 1  # the two known classes pass


def shifted_origin(image: sitk.Image) -> None:
    image.SetOrigin(tuple(value + 5.0 for value in image.GetOrigin()))


def stretched_spacing(image: sitk.Image) -> None:
    image.SetSpacing(tuple(value * 1.5 for value in image.GetSpacing()))


def flipped_direction(image: sitk.Image) -> None:
    direction = np.array(image.GetDirection()).reshape(3, 3)
    direction[:, 0] *= -1
    image.SetDirection(direction.ravel().tolist())


def rewrite_prediction(results_root: Path, case: str, change) -> None:
    path = student_folder(results_root) / "fold_0" / "validation" / f"{case}{ENDING}"
    image = sitk.ReadImage(str(path))
    change(image)
    sitk.WriteImage(image, str(path))


@pytest.mark.parametrize(
    "change, key", [(shifted_origin, "origin"), (stretched_spacing, "spacing"), (flipped_direction, "direction")]
)
def test_prediction_on_another_image_grid_is_refused(preprocessed_root, results_root, tmp_path, change, key):
    case = validation_cases(preprocessed_root, 0)[-1]
    rewrite_prediction(results_root, case, change)
    message = refusal(preprocessed_root, results_root, tmp_path)
    assert f"has the {key} (" in message and f"ground truth of case {case}" in message
    assert f"{case}{ENDING}" in message and "rerun nnU-Net's validation" in message


def no_scoring(monkeypatch) -> None:
    def scoring(*args):
        raise AssertionError("cases were scored before every file was checked")

    monkeypatch.setattr("nnunetv2_hlfd.evaluation.benchmark.evaluate_cases", scoring)


def test_ground_truth_holding_a_value_that_is_not_a_label_is_refused_before_scoring(
    plans_slicing_axis_1, tmp_path, monkeypatch
):
    results = teacher_and_student(tmp_path / "results", plans_slicing_axis_1)
    case = validation_cases(plans_slicing_axis_1, 0)[0]
    truth = read_ground_truth(plans_slicing_axis_1, case)
    labels = sitk.GetArrayFromImage(truth)
    labels[0, 0, 0] = 6  # a label the kidney-and-tumour dataset does not have
    write_like(labels, truth, dataset_folder(plans_slicing_axis_1) / "gt_segmentations" / f"{case}{ENDING}")
    no_scoring(monkeypatch)
    message = refusal(plans_slicing_axis_1, results, tmp_path)
    assert f"the ground truth {dataset_folder(plans_slicing_axis_1)}/gt_segmentations/{case}{ENDING}" in message
    assert f"holds the values 6, which are not labels of {DATASET_NAME} ([0, 1, 2]" in message
    assert "nothing was scored" in message


def test_bad_predictions_of_every_trainer_are_named_at_once_before_scoring(
    preprocessed_root, results_root, tmp_path, monkeypatch
):
    first, last = validation_cases(preprocessed_root, 0)[0], validation_cases(preprocessed_root, 0)[-1]
    rewrite_prediction(results_root, last, shifted_origin)  # the student's
    teachers = teacher_folder(results_root) / "fold_0" / "validation" / f"{first}{ENDING}"
    prediction = sitk.ReadImage(str(teachers))
    labels = sitk.GetArrayFromImage(prediction)
    labels[0, 0, 0] = 7
    write_like(labels, prediction, teachers)
    no_scoring(monkeypatch)
    with pytest.raises(BenchmarkInputError) as error:
        benchmark(preprocessed_root, results_root, tmp_path)
    teacher_problem, student_problem = sorted(error.value.problems, key=lambda p: STUDENT in p)
    assert f"the prediction {teachers} holds the values 7" in teacher_problem
    assert f"{last}{ENDING} has the origin (" in student_problem and STUDENT in student_problem


def test_prediction_whose_origin_differs_by_float_rounding_is_accepted(preprocessed_root, results_root, tmp_path):
    case = validation_cases(preprocessed_root, 0)[0]
    rewrite_prediction(
        results_root, case, lambda image: image.SetOrigin(tuple(value + 1e-5 for value in image.GetOrigin()))
    )  # well inside the 1e-3 mm tolerance
    per_case = pd.read_csv(benchmark(preprocessed_root, results_root, tmp_path) / "per_case.csv")
    assert (per_case[(per_case["trainer"] == TEACHER) & (per_case["class"] == "kidney")]["dsc"] == 1.0).all()


def test_model_trained_on_another_label_set_is_refused(preprocessed_root, results_root, tmp_path):
    dataset_file = student_folder(results_root) / "dataset.json"
    dataset_json = json.loads(dataset_file.read_text())
    dataset_file.write_text(json.dumps(dataset_json | {"labels": dataset_json["labels"] | {"cyst": 3}}))
    message = refusal(preprocessed_root, results_root, tmp_path)
    assert f"trainer {STUDENT!r} cannot be benchmarked" in message and "'cyst': 3" in message
    assert "was trained on the labels" in message and "retrain it on this dataset" in message


@pytest.mark.parametrize("protocol", ["paper", "standard"])
def test_tumour_class_that_the_dataset_lacks_is_refused(preprocessed_root, results_root, tmp_path, protocol):
    message = refusal(preprocessed_root, results_root, tmp_path, protocol=protocol, tumour_label="liver")
    assert "no class 'liver'" in message and "kidney (1), tumor (2)" in message and "--tumour-label" in message


def test_cuda_timing_without_a_gpu_is_refused(preprocessed_root, results_root, tmp_path, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    message = refusal(preprocessed_root, results_root, tmp_path, speed=True, devices=("cpu", "cuda"))
    assert "--device cuda" in message and "no CUDA device" in message and "--no-speed" in message


def test_results_folder_of_another_dataset_is_refused(preprocessed_root, results_root, tmp_path):
    plans_file = results_root / DATASET_NAME / f"{STUDENT}__nnUNetPlans__2d" / "plans.json"
    plans = json.loads(plans_file.read_text())
    plans_file.write_text(json.dumps(plans | {"dataset_name": "Dataset123_Other"}))
    message = refusal(preprocessed_root, results_root, tmp_path)
    assert "Dataset123_Other" in message and str(plans_file.parent) in message


def test_reference_trainer_must_be_benchmarked(preprocessed_root, results_root, tmp_path):
    message = refusal(preprocessed_root, results_root, tmp_path, reference="nnUNetTrainerHLFD")
    assert "nnUNetTrainerHLFD" in message and "--reference" in message


def test_existing_output_is_kept_without_overwrite(preprocessed_root, results_root, tmp_path):
    (tmp_path / "benchmark").mkdir()
    (tmp_path / "benchmark" / "mine.txt").write_text("keep me")
    with pytest.raises(BenchmarkInputError, match="--overwrite"):
        benchmark(preprocessed_root, results_root, tmp_path)
    assert (tmp_path / "benchmark" / "mine.txt").read_text() == "keep me"


def overwrite_from_the_command_line(preprocessed_root, results_root, output, monkeypatch, capsys) -> tuple[int, str]:
    """`nnunetv2_hlfd benchmark ... -o OUTPUT --overwrite` as a user types it: its exit status and stderr."""
    monkeypatch.setattr("nnunetv2.paths.nnUNet_preprocessed", str(preprocessed_root))
    monkeypatch.setattr("nnunetv2.paths.nnUNet_results", str(results_root))
    with pytest.raises(SystemExit) as exit_status:
        main(
            ["benchmark", "-d", DATASET_NAME, "-c", "2d", "-tr", TEACHER, STUDENT, "-f", "0", "--no-speed"]
            + ["-o", str(output), "--overwrite"]
        )
    return exit_status.value.code, capsys.readouterr().err


def test_overwrite_never_deletes_a_folder_the_benchmark_did_not_write(
    preprocessed_root, results_root, tmp_path, monkeypatch, capsys
):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text(r"\documentclass{book}")
    exit_status, error = overwrite_from_the_command_line(preprocessed_root, results_root, thesis, monkeypatch, capsys)
    assert exit_status == 2
    assert f"{thesis} is not empty and was not written by nnunetv2_hlfd benchmark" in error
    assert "not even with --overwrite" in error and "Traceback" not in error
    assert sorted(p.name for p in thesis.iterdir()) == ["thesis.tex"]


def test_overwrite_replaces_an_earlier_benchmark_whole(preprocessed_root, results_root, tmp_path):
    with staged(tmp_path / "benchmark", "benchmark") as earlier:  # a file the earlier benchmark wrote, not this one
        (earlier / "stale.csv").write_text("from the earlier benchmark")
    output = benchmark(preprocessed_root, results_root, tmp_path, overwrite=True)
    assert not (output / "stale.csv").exists() and (output / "report.md").is_file()
    assert read_marker(output, "benchmark") is not None
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging folder left


def test_overwrite_refuses_an_earlier_benchmark_holding_a_file_put_there_since(
    preprocessed_root, shared_run, tmp_path, monkeypatch, capsys
):
    output = tmp_path / "benchmark"
    shutil.copytree(shared_run[1], output)
    (output / "thesis.tex").write_text(r"\documentclass{book}")
    earlier = {p: p.read_bytes() for p in output.rglob("*") if p.is_file()}
    exit_status, error = overwrite_from_the_command_line(preprocessed_root, shared_run[0], output, monkeypatch, capsys)
    assert exit_status == 2
    assert "holds what nnunetv2_hlfd benchmark did not write there: thesis.tex;" in error and "Traceback" not in error
    assert {p: p.read_bytes() for p in output.rglob("*") if p.is_file()} == earlier


def test_a_damaged_json_file_of_the_dataset_is_refused_naming_it(plans_slicing_axis_1, tmp_path):
    results = teacher_and_student(tmp_path / "results", plans_slicing_axis_1)
    splits = dataset_folder(plans_slicing_axis_1) / "splits_final.json"
    splits.write_text(splits.read_text()[:-20])  # cut short, as an interrupted copy
    message = refusal(plans_slicing_axis_1, results, tmp_path)
    assert f"{splits} is not valid JSON" in message and "restore or correct it" in message


def test_unset_nnunet_folders_are_refused_naming_the_variable(monkeypatch, capsys):
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)
    with pytest.raises(SystemExit) as exit_status:
        main(["benchmark", "-d", DATASET_NAME, "-c", "2d", "--no-speed"])
    assert exit_status.value.code == 2
    error = capsys.readouterr().err
    assert "nnUNet_preprocessed is not defined" in error and "Traceback" not in error


def test_a_lesion_iou_threshold_outside_0_to_1_is_refused_before_anything_runs(capsys):
    with pytest.raises(SystemExit) as exit_status:
        main(["benchmark", "-d", DATASET_NAME, "-c", "2d", "--lesion-iou-threshold", "2"])
    assert exit_status.value.code == 2
    assert "--lesion-iou-threshold must be above 0 and at most 1, got 2.0" in capsys.readouterr().err


def test_command_line_reports_bad_input_as_an_error_not_a_traceback(capsys):
    with pytest.raises(SystemExit) as exit_status:
        main(["benchmark", "-d", DATASET_NAME, "-c", "2d", "--folds", "0", "0"])
    assert exit_status.value.code == 2
    assert "--folds names an entry twice" in capsys.readouterr().err
