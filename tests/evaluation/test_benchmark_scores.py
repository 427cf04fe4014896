"""`nnunetv2_hlfd benchmark` on model folders whose "predictions" are the ground truth or a known alteration
of it: the scores, the paper protocol, the report's records and the compression table follow from voxel
counts. No model is trained here (speed is switched off), so these tests take seconds."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from benchmark_inputs import (
    STUDENT,
    TEACHER,
    add_probabilities,
    benchmark,
    dataset_folder,
    label_counts,
    refusal,
    student_folder,
    teacher_and_student,
    teacher_folder,
    tumour_slices,
    validation_cases,
)
from nnunet_runs import DATASET_NAME

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
