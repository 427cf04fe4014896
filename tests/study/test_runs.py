"""Run-level statistics: the exact sign-flip permutation test and the families of compare_runs."""

from __future__ import annotations

import math

import pytest

from nnunetv2_hlfd.study.curves import LearningCurve
from nnunetv2_hlfd.study.grid import StudySettings
from nnunetv2_hlfd.study.runs import Run, compare_runs, paired_permutation_p


@pytest.mark.parametrize(
    "differences, alternative, p",
    [
        ([1.0, 2.0, 3.0], "greater", 1 / 8),  # only the all-positive pattern reaches the observed sum
        ([1.0, 2.0, 3.0], "two-sided", 2 / 8),
        ([1.0, -1.0], "greater", 3 / 4),  # sums 2, 0, 0, -2 against the observed 0
        ([0.0, 0.0], "greater", 1.0),
        ([], "greater", 1.0),
        ([0.5, math.nan], "greater", 1 / 2),  # the NaN pair is left out
    ],
)
def test_the_permutation_test_counts_sign_patterns(differences, alternative, p):
    assert paired_permutation_p(differences, alternative) == pytest.approx(p)


def test_an_unknown_alternative_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="'greater' or 'two-sided'"):
        paired_permutation_p([1.0], "less")


def run(variant: str, fold: int, seed: int, tumour: float, curve_tumour: tuple[float, ...]) -> Run:
    curve = LearningCurve((0.0,) * len(curve_tumour), (0.0,) * len(curve_tumour), tuple((0.9, v) for v in curve_tumour))
    return Run(variant, fold, seed, {"kidney": 0.9, "tumor": tumour}, {"c": {"kidney": 0.9, "tumor": tumour}}, curve)


def test_students_are_compared_with_the_plain_one_pair_by_pair_in_their_families():
    settings = StudySettings("D", "2d", students=("nnUNetTrainerStudent", "nnUNetTrainerHLFD", "nnUNetTrainerKD"))
    runs = []
    for fold in (0, 1):
        runs.append(run("nnUNetTrainerStudent", fold, 0, 0.1, (0.0, 0.1)))
        runs.append(run("nnUNetTrainerHLFD", fold, 0, 0.5 - 0.5 * fold, (0.0, 0.3 * (1 - fold))))
        runs.append(run("nnUNetTrainerKD", fold, 0, 0.2, (0.0, 0.1)))
    comparison = compare_runs(runs, settings, ["kidney", "tumor"])
    tests = {(t.student, t.endpoint): t for t in comparison.tests}
    onset = tests[("nnUNetTrainerHLFD", "onset (tumor pseudo-Dice >= 0.2)")]
    assert (onset.family, onset.student_value, onset.reference_value) == ("primary", "1/2", "0/2")
    final = tests[("nnUNetTrainerHLFD", "final tumor DSC")]
    assert final.p_value == pytest.approx(0.5)  # differences +0.4 and -0.1: half the patterns reach +0.3
    assert final.family == "primary" and final.p_holm >= final.p_value
    kd = tests[("nnUNetTrainerKD", "final tumor DSC")]
    assert kd.family == "secondary: final tumor DSC" and kd.p_value == pytest.approx(0.25)
    assert tests[("nnUNetTrainerKD", "final kidney DSC")].alternative == "two-sided"
    assert {row["student"] for row in comparison.case_level} == {"nnUNetTrainerHLFD", "nnUNetTrainerKD"}


def test_a_student_without_finished_runs_has_no_test_rather_than_p_1():
    settings = StudySettings("D", "2d", students=("nnUNetTrainerStudent", "nnUNetTrainerHLFD", "nnUNetTrainerKD"))
    runs = [run("nnUNetTrainerStudent", 0, 0, 0.1, (0.0,)), run("nnUNetTrainerHLFD", 0, 0, 0.2, (0.0,))]
    comparison = compare_runs(runs, settings, ["kidney", "tumor"])
    kd = [t for t in comparison.tests if t.student == "nnUNetTrainerKD"]
    assert kd and all(t.n == 0 and math.isnan(t.p_value) for t in kd)
    assert "nnUNetTrainerKD" not in {row["student"] for row in comparison.case_level}


def test_case_level_pairs_only_the_repeats_both_variants_ran():
    settings = StudySettings("D", "2d", students=("nnUNetTrainerStudent", "nnUNetTrainerKD"))
    # the plain student ran seeds 0 and 1, KD only seed 0: KD is compared with the plain student's seed 0
    runs = [
        run("nnUNetTrainerStudent", 0, 0, 0.2, (0.0,)),
        run("nnUNetTrainerStudent", 0, 1, 0.8, (0.0,)),
        run("nnUNetTrainerKD", 0, 0, 0.2, (0.0,)),
    ]
    [tumour] = [r for r in compare_runs(runs, settings, ["kidney", "tumor"]).case_level if r["class"] == "tumor"]
    assert tumour["trainings"] == 1 and tumour["mean_difference"] == pytest.approx(0.0)
