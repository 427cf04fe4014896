"""`nnunetv2_hlfd benchmark` on model folders whose "predictions" are the ground truth or a
known alteration of it: the scores follow from voxel counts, and every bad input is refused
with an error that names it. No model is trained here (parameters and multiply-adds come
from the plans; speed is switched off), so these tests take seconds."""

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from nnunet_runs import DATASET_NAME

from nnunetv2_hlfd.cli import main
from nnunetv2_hlfd.evaluation.benchmark import run_benchmark
from nnunetv2_hlfd.evaluation.model_folders import BenchmarkInputError
from nnunetv2_hlfd.evaluation.settings import BenchmarkSettings
from nnunetv2_hlfd.utilities.output_folder import read_marker, staged

ENDING = ".nii.gz"
KIDNEY, TUMOUR = 1, 2
TEACHER, STUDENT = "nnUNetTrainer", "nnUNetTrainerStudent"


@pytest.fixture(scope="module")
def preprocessed_root(nnunet_dirs, tmp_path_factory) -> Path:
    """Dataset991's preprocessed metadata and ground truth, with its own five-fold split."""
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    source = nnunet_dirs["nnUNet_preprocessed"] / DATASET_NAME
    root = tmp_path_factory.mktemp("benchmark_preprocessed")
    target = root / DATASET_NAME
    target.mkdir()
    for name in ("dataset.json", "nnUNetPlans.json"):
        shutil.copy(source / name, target / name)
    shutil.copytree(source / "gt_segmentations", target / "gt_segmentations")
    cases = sorted(p.name[: -len(ENDING)] for p in (target / "gt_segmentations").glob(f"*{ENDING}"))
    (target / "splits_final.json").write_text(json.dumps(generate_crossval_split(cases, seed=12345, n_splits=5)))
    return root


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


@pytest.fixture
def results_root(tmp_path, preprocessed_root) -> Path:
    """`teacher_and_student` for a test to alter."""
    return teacher_and_student(tmp_path / "results", preprocessed_root)


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory, preprocessed_root) -> tuple[Path, Path]:
    """(results root, output folder) of one standard benchmark of `teacher_and_student`, for tests that only read."""
    folder = tmp_path_factory.mktemp("benchmark_shared")
    results = teacher_and_student(folder / "results", preprocessed_root)
    return results, benchmark(preprocessed_root, results, folder)


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


# --- scores of known predictions ---------------------------------------------------------


def test_scores_follow_the_voxel_counts_of_a_known_error(preprocessed_root, shared_run):
    per_case = pd.read_csv(shared_run[1] / "per_case.csv")
    student = per_case[per_case["trainer"] == STUDENT].set_index(["case", "class"])
    for case in validation_cases(preprocessed_root, 0):
        kidney, tumour = label_counts(preprocessed_root, case)
        # The student's kidney is kidney plus tumour: all of the reference inside it.
        assert student.loc[(case, "kidney"), "dsc"] == pytest.approx(2 * kidney / (2 * kidney + tumour))
        assert student.loc[(case, "kidney"), "rvd"] == pytest.approx(tumour / kidney)
        tumour_dsc = student.loc[(case, "tumor"), "dsc"]
        assert tumour_dsc == 0.0 if tumour else math.isnan(tumour_dsc)


def test_ground_truth_as_prediction_scores_perfectly(preprocessed_root, shared_run):
    per_case = pd.read_csv(shared_run[1] / "per_case.csv")
    teacher = per_case[(per_case["trainer"] == TEACHER) & (per_case["class"] == "kidney")]
    assert len(teacher) == len(validation_cases(preprocessed_root, 0))
    assert (teacher["dsc"] == 1.0).all() and (teacher["hd95"] == 0.0).all() and (teacher["voe"] == 0.0).all()


def test_paper_protocol_scores_tumour_slices_with_plus_one_smoothing(preprocessed_root, shared_run, tmp_path, capsys):
    output = benchmark(preprocessed_root, shared_run[0], tmp_path, protocol="paper")
    assert "no validation folder holds probabilities" in capsys.readouterr().out  # so every model's argmax
    per_case = pd.read_csv(output / "per_case.csv")
    assert set(per_case["class"]) == {"tumor"}
    student = per_case[per_case["trainer"] == STUDENT].set_index("case")
    for case in validation_cases(preprocessed_root, 0):
        _, tumour = label_counts(preprocessed_root, case)
        expected = (1 / (tumour + 1), -1.0) if tumour else (math.nan, math.nan)
        assert student.loc[case, ["dsc", "rvd"]].tolist() == pytest.approx(expected, nan_ok=True)


def tumour_slices(preprocessed_root: Path, case: str, axis: int) -> int:
    labels = sitk.GetArrayFromImage(read_ground_truth(preprocessed_root, case))
    return int(np.moveaxis(labels == TUMOUR, axis, 0).any(axis=(1, 2)).sum())


@pytest.fixture
def plans_slicing_axis_1(preprocessed_root, tmp_path) -> Path:
    """The preprocessed dataset with plans whose 2d configuration slices array axis 1."""
    root = tmp_path / "preprocessed"
    shutil.copytree(preprocessed_root, root)
    plans_file = root / DATASET_NAME / "nnUNetPlans.json"
    plans = json.loads(plans_file.read_text())
    plans["transpose_forward"] = plans["transpose_backward"] = [1, 0, 2]
    plans_file.write_text(json.dumps(plans))
    return root


def test_paper_protocol_slices_the_axis_the_plans_2d_configuration_slices(plans_slicing_axis_1, tmp_path):
    results = teacher_and_student(tmp_path / "results", plans_slicing_axis_1)
    output = benchmark(plans_slicing_axis_1, results, tmp_path, protocol="paper")
    teacher = pd.read_csv(output / "per_case.csv").query("trainer == @TEACHER").set_index("case")
    cases = validation_cases(plans_slicing_axis_1, 0)
    assert [teacher.loc[case, "n_tumour_slices"] for case in cases] == [
        tumour_slices(plans_slicing_axis_1, case, axis=1) for case in cases
    ]
    assert [tumour_slices(plans_slicing_axis_1, case, 1) for case in cases] != [
        tumour_slices(plans_slicing_axis_1, case, 0) for case in cases
    ]  # the axis makes a difference here
    assert "along array axis 1" in (output / "report.md").read_text()


def test_settings_and_report_record_versions_commit_machine_and_the_split(preprocessed_root, shared_run):
    from nnunetv2_hlfd.utilities.provenance import cpu_model, file_sha256

    recorded = json.loads((shared_run[1] / "settings.json").read_text())["provenance"]
    splits_hash = file_sha256(dataset_folder(preprocessed_root) / "splits_final.json")
    assert recorded["splits_final_sha256"] == splits_hash and recorded["cpu"] == cpu_model()
    assert recorded["versions"]["nnunetv2"] == "2.8.1" and recorded["nnunetv2_hlfd_commit"]
    report = (shared_run[1] / "report.md").read_text()
    assert splits_hash in report and "nnunetv2 2.8.1" in report and cpu_model() in report
    assert f"Dataset: {len(validation_cases(preprocessed_root, 0))} validation cases scored" in report


def test_tumour_dsc_is_the_primary_endpoint_and_each_other_metric_a_family(shared_run):
    comparisons = pd.read_csv(shared_run[1] / "comparisons.csv")
    families = comparisons.set_index(["class", "metric"])["family"]
    assert families[("tumor", "dsc")] == "primary" and families[("kidney", "dsc")] == "secondary: dsc"
    assert "voe" not in set(comparisons["metric"])  # VOE follows DSC case by case: described, not tested
    assert (
        "- primary (tumor dsc): 1 test(s); an exact test needs 6 non-zero pairs"
        in (shared_run[1] / "report.md").read_text()
    )


def test_a_primary_endpoint_that_is_not_tested_is_refused(preprocessed_root, results_root, tmp_path):
    message = refusal(preprocessed_root, results_root, tmp_path, primary_endpoint="liver:voe")
    assert "'liver:voe'" in message and "classes kidney, tumor" in message and "tumor:dsc" not in message


def test_class_tolerances_are_used_and_named_in_the_report(preprocessed_root, shared_run, tmp_path):
    output = benchmark(preprocessed_root, shared_run[0], tmp_path, tolerance_mm=0.0, class_tolerances_mm=("tumor=5",))
    assert "Surface Dice tolerance: kidney 0 mm, tumor 5 mm." in (output / "report.md").read_text()
    default = pd.read_csv(shared_run[1] / "per_case.csv").set_index(["trainer", "case", "class"])["surface_dice"]
    ours = pd.read_csv(output / "per_case.csv").set_index(["trainer", "case", "class"])["surface_dice"]
    at_zero, at_one = (values.xs((STUDENT, "kidney"), level=("trainer", "class")) for values in (ours, default))
    assert (at_zero <= at_one).all() and (at_zero < at_one).any()
    assert "Surface Dice tolerance: 1 mm for every class." in (shared_run[1] / "report.md").read_text()


def test_a_tolerance_of_an_unknown_class_is_refused(preprocessed_root, results_root, tmp_path):
    message = refusal(preprocessed_root, results_root, tmp_path, class_tolerances_mm=("liver=1", "tumor=x"))
    assert "'liver=1'" in message and "'tumor=x'" in message and "(kidney, tumor)" in message


def test_markdown_report_has_one_row_per_trainer(shared_run):
    report = (shared_run[1] / "report.md").read_text()
    first_table = report.split("## ")[2]
    rows = [line for line in first_table.splitlines() if line.startswith("| nnUNet")]
    assert [row.split("|")[1].strip() for row in rows] == [TEACHER, STUDENT]
    assert "ref" in rows[1] and "kidney DSC (%)" in first_table and "tumor RVD (%)" in first_table


def test_compression_table_gives_the_dsc_delta_to_teacher_and_reference(shared_run):
    output = shared_run[1]
    compression = pd.read_csv(output / "compression.csv").set_index("trainer")
    summary = pd.read_csv(output / "summary.csv")
    kidney_dsc = summary[(summary["metric"] == "dsc") & (summary["class"] == "kidney")].set_index("trainer")
    expected = kidney_dsc.loc[STUDENT, "case_mean"] - kidney_dsc.loc[TEACHER, "case_mean"]
    assert compression.loc[STUDENT, "delta_dsc_kidney_vs_teacher"] == pytest.approx(expected)
    assert compression.loc[STUDENT, "delta_dsc_kidney_vs_reference"] == 0.0
    assert compression.loc[TEACHER, "parameters_vs_teacher"] == 1.0
    assert 0 < compression.loc[STUDENT, "parameters_vs_teacher"] < 1
    assert "volume_latency_s_cpu" not in compression.columns  # speed was switched off


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


def test_paper_protocol_cuts_saved_probabilities_at_0_4_instead_of_the_argmax(
    preprocessed_root, results_root, tmp_path, capsys
):
    # The student's segmentations call tumour kidney (the argmax); its probabilities say tumour.
    cases = validation_cases(preprocessed_root, 0)
    for model in (student_folder(results_root), teacher_folder(results_root)):
        add_probabilities(model, preprocessed_root, cases)
    output = benchmark(preprocessed_root, results_root, tmp_path, protocol="paper")
    per_case = pd.read_csv(output / "per_case.csv").set_index(["trainer", "case"])
    for case in cases:
        _, tumour = label_counts(preprocessed_root, case)
        # Probability > 0.4 is exactly the reference tumour: P = G = I = T on the tumour slices,
        # so DSC = (2T + 1) / (T + T + 1) = 1 and RVD = T / T - 1 = 0 (the argmax: 1 / (T + 1), -1).
        expected = (1.0, 0.0) if tumour else (math.nan, math.nan)
        assert per_case.loc[(STUDENT, case), ["dsc", "rvd"]].tolist() == pytest.approx(expected, nan_ok=True)
    assert set(per_case["tumour_source"]) == {"probability > 0.4"}
    assert "from the saved probabilities (<case>.npz) of every model and fold" in capsys.readouterr().out


def test_paper_protocol_refuses_to_compare_probabilities_with_segmentations(preprocessed_root, results_root, tmp_path):
    cases = validation_cases(preprocessed_root, 0)
    add_probabilities(student_folder(results_root), preprocessed_root, cases)  # the teacher has none
    message = refusal(preprocessed_root, results_root, tmp_path, protocol="paper")
    assert str(teacher_folder(results_root) / "fold_0" / "validation") in message
    assert f"lacks <case>.npz of {len(cases)} of {len(cases)} cases" in message
    assert f"nnUNetv2_train {DATASET_NAME} 2d 0 -tr {TEACHER} --val --npz" in message
    assert str(student_folder(results_root)) not in message and "--paper-masks argmax" in message


def test_paper_protocol_refuses_a_folder_with_some_probabilities_missing(preprocessed_root, results_root, tmp_path):
    cases = validation_cases(preprocessed_root, 0)
    add_probabilities(teacher_folder(results_root), preprocessed_root, cases)
    add_probabilities(student_folder(results_root), preprocessed_root, cases[1:])
    message = refusal(preprocessed_root, results_root, tmp_path, protocol="paper")
    assert f"lacks <case>.npz of 1 of {len(cases)} cases" in message and f"-tr {STUDENT} --val --npz" in message


def test_paper_masks_argmax_scores_every_segmentation_even_beside_probabilities(
    preprocessed_root, results_root, tmp_path
):
    add_probabilities(student_folder(results_root), preprocessed_root, validation_cases(preprocessed_root, 0))
    output = benchmark(preprocessed_root, results_root, tmp_path, protocol="paper", paper_masks="argmax")
    per_case = pd.read_csv(output / "per_case.csv")
    assert set(per_case["tumour_source"]) == {"segmentation"}
    student = per_case[(per_case["trainer"] == STUDENT) & per_case["dsc"].notna()]
    assert (student["rvd"] == -1.0).all()  # the argmax calls every tumour voxel kidney


def test_probabilities_of_another_grid_are_refused(preprocessed_root, results_root, tmp_path):
    case = validation_cases(preprocessed_root, 0)[0]
    for model in (student_folder(results_root), teacher_folder(results_root)):
        add_probabilities(model, preprocessed_root, validation_cases(preprocessed_root, 0))
    np.savez_compressed(
        student_folder(results_root) / "fold_0" / "validation" / f"{case}.npz",
        probabilities=np.zeros((3, 2, 2, 2), dtype=np.float32),
    )
    message = refusal(preprocessed_root, results_root, tmp_path, protocol="paper")
    assert f"{case}.npz" in message and "(3, 2, 2, 2)" in message and "--npz" in message


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


def test_overwrite_never_deletes_a_folder_the_benchmark_did_not_write(
    preprocessed_root, results_root, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr("nnunetv2.paths.nnUNet_preprocessed", str(preprocessed_root))
    monkeypatch.setattr("nnunetv2.paths.nnUNet_results", str(results_root))
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text(r"\documentclass{book}")
    with pytest.raises(SystemExit) as exit_status:
        main(
            ["benchmark", "-d", DATASET_NAME, "-c", "2d", "-tr", TEACHER, STUDENT, "-f", "0", "--no-speed"]
            + ["-o", str(thesis), "--overwrite"]
        )
    assert exit_status.value.code == 2
    error = capsys.readouterr().err
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
    monkeypatch.setattr("nnunetv2.paths.nnUNet_preprocessed", str(preprocessed_root))
    monkeypatch.setattr("nnunetv2.paths.nnUNet_results", str(shared_run[0]))
    output = tmp_path / "benchmark"
    shutil.copytree(shared_run[1], output)
    (output / "thesis.tex").write_text(r"\documentclass{book}")
    earlier = {p: p.read_bytes() for p in output.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as exit_status:
        main(
            ["benchmark", "-d", DATASET_NAME, "-c", "2d", "-tr", TEACHER, STUDENT, "-f", "0", "--no-speed"]
            + ["-o", str(output), "--overwrite"]
        )
    assert exit_status.value.code == 2
    error = capsys.readouterr().err
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
