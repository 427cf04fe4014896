"""Run-level statistics: the exact sign-flip permutation test and the families of compare_runs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from nnunetv2_hlfd.study.curves import LearningCurve
from nnunetv2_hlfd.study.grid import StudySettings
from nnunetv2_hlfd.study.runs import (
    Roles,
    Run,
    compare_runs,
    detectable_difference,
    gap_share,
    paired_permutation_p,
    sign_flip_p,
)


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


def enumerated_sign_flip_p(differences, alternative: str) -> float:
    """The reference: every one of the 2^n sign patterns written out, the share reaching the observed sum."""
    sums = [
        sum(s * d for s, d in zip(signs, differences)) for signs in itertools.product((1, -1), repeat=len(differences))
    ]
    observed, tolerance = sum(differences), 1e-9
    if alternative == "greater":
        return sum(total >= observed - tolerance for total in sums) / len(sums)
    return sum(abs(total) >= abs(observed) - tolerance for total in sums) / len(sums)


@pytest.mark.parametrize("alternative", ["greater", "two-sided"])
@pytest.mark.parametrize(
    "differences",
    [
        [0.3, -0.1, 0.2, 0.5, 0.1, 0.05],
        [0.02, 0.02, -0.02, 0.04],  # tied sums
        [-0.4, -0.1, 0.05],  # the student worse: one-sided p near 1
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, -0.05, 0.01],
        list(np.random.default_rng(3).normal(0.02, 0.05, 9)),
    ],
)
def test_scipys_permutation_test_agrees_with_the_enumerated_sign_patterns(differences, alternative):
    assert paired_permutation_p(differences, alternative) == pytest.approx(
        enumerated_sign_flip_p(differences, alternative)
    )


def test_many_simulated_designs_get_their_exact_p_values_in_one_call():
    designs = np.random.default_rng(0).normal(0.0, 1.0, (5, 6))
    assert sign_flip_p(designs) == pytest.approx([enumerated_sign_flip_p(list(d), "greater") for d in designs])


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
    assert (onset.family, onset.student_value, onset.reference_value) == ("secondary: onset", "1/2", "0/2")
    assert tests[("nnUNetTrainerHLFD", "tumor curve area")].family == "secondary: tumor curve area"
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


def test_each_size_is_compared_with_its_own_plain_student_and_both_hlfd_tests_form_the_primary_family():
    students = ("nnUNetTrainerStudent", "nnUNetTrainerHLFD", "nnUNetTrainerStudentSmall", "nnUNetTrainerHLFDSmall")
    settings = StudySettings("D", "2d", students=students)
    roles = Roles(
        {"nnUNetTrainerHLFD": "nnUNetTrainerStudent", "nnUNetTrainerHLFDSmall": "nnUNetTrainerStudentSmall"},
        ("nnUNetTrainerHLFD", "nnUNetTrainerHLFDSmall"),
    )
    runs = []
    for seed in range(6):
        runs += [run("nnUNetTrainerStudent", 0, seed, 0.5, (0.0,)), run("nnUNetTrainerHLFD", 0, seed, 0.6, (0.0,))]
        # the Small student alone is better than the default HLFD: a comparison across sizes would say so
        runs += [run("nnUNetTrainerStudentSmall", 0, seed, 0.7, (0.0,))]
        runs += [run("nnUNetTrainerHLFDSmall", 0, seed, 0.7 + (0.01 if seed % 2 else -0.01), (0.0,))]
    comparison = compare_runs(runs, settings, ["kidney", "tumor"], roles)
    primary = {t.student: t for t in comparison.tests if t.family == "primary"}
    assert set(primary) == {"nnUNetTrainerHLFD", "nnUNetTrainerHLFDSmall"}
    assert primary["nnUNetTrainerHLFD"].p_value == pytest.approx(1 / 64)  # better in all 6 pairs
    assert primary["nnUNetTrainerHLFD"].p_holm == pytest.approx(2 / 64)  # Holm over the two sizes
    assert primary["nnUNetTrainerHLFDSmall"].reference_value == "0.700"
    assert primary["nnUNetTrainerHLFDSmall"].p_value > 0.3


def test_the_detectable_difference_is_the_one_the_test_finds_with_80_percent_power():
    # 6 pairs at 0.025: only "better in every pair" rejects, so power = Phi(d / sd)^6 = 0.8 at d = 1.79 sd
    result = detectable_difference([0.1, -0.1, 0.2, -0.2, 0.05, -0.05], alpha=0.025)
    assert result["pairs"] == 6 and result["smallest_p"] == pytest.approx(1 / 64)
    assert result["difference"] == pytest.approx(1.79 * result["sd"], rel=0.08)
    # 5 pairs cannot reach 0.025 (smallest p 1/32): no difference is detectable
    assert math.isnan(detectable_difference([0.1, -0.1, 0.2, -0.2, 0.05], alpha=0.025)["difference"])


def test_the_gap_share_is_the_students_gain_over_the_teachers_lead_with_a_bootstrap_interval():
    teacher = [run("nnUNetTrainer", 0, 0, 0.6, (0.0,))]
    runs = []
    for seed, (plain, student) in enumerate([(0.4, 0.5), (0.4, 0.45), (0.5, 0.55), (0.3, 0.35)]):
        runs += [
            run("nnUNetTrainerStudent", 0, seed, plain, (0.0,)),
            run("nnUNetTrainerHLFD", 0, seed, student, (0.0,)),
        ]
    share = gap_share(runs, teacher, "nnUNetTrainerHLFD", "nnUNetTrainerStudent", lambda r: r.final_dsc["tumor"])
    # plain mean 0.4, student mean 0.4625, teacher 0.6: 0.0625 / 0.2
    assert share["pairs"] == 4 and share["share"] == pytest.approx(0.3125)
    assert share["low"] <= share["share"] <= share["high"]
    no_teacher = gap_share(runs, [], "nnUNetTrainerHLFD", "nnUNetTrainerStudent", lambda r: r.final_dsc["tumor"])
    assert no_teacher["pairs"] == 0 and math.isnan(no_teacher["share"])
