"""Paired tests of differences: SciPy's Wilcoxon with its method named, rank-biserial, Holm, bootstrap interval."""

import math

import numpy as np
import pytest

from nnunetv2_hlfd.evaluation.paired_tests import (
    holm_adjust,
    paired_wilcoxon,
    rank_biserial,
    smallest_pairs_for,
    smallest_two_sided_p,
)


@pytest.mark.parametrize(
    "differences, method",
    [
        (np.random.default_rng(0).normal(0.02, 0.1, 60), "normal approximation (more than 50 pairs)"),
        (np.round(np.random.default_rng(1).normal(0.02, 0.1, 30), 2), "normal approximation (tied differences"),
    ],
    ids=["60 pairs", "30 tied pairs"],
)
def test_the_normal_approximation_has_scipys_continuity_corrected_p(differences, method):
    from scipy.stats import wilcoxon

    test = paired_wilcoxon(differences)
    corrected = wilcoxon(differences, method="asymptotic", correction=True).pvalue
    uncorrected = wilcoxon(differences, method="asymptotic", correction=False).pvalue
    assert test.method.startswith(method)
    assert test.p_value == pytest.approx(corrected, rel=1e-12) and test.p_value != pytest.approx(uncorrected, rel=1e-4)


def test_rank_biserial_is_the_signed_rank_sum_share():
    # |d| ranks 1, 2, 3, 4; positive ranks 1 + 2 + 4 = 7, negative 3: (7 - 3) / 10.
    assert rank_biserial(np.array([0.1, 0.2, -0.3, 0.4])) == pytest.approx(0.4)


def test_rank_biserial_ignores_zero_differences():
    assert rank_biserial(np.array([0.0, 0.0, -0.1, -0.2])) == pytest.approx(-1.0)


def test_median_difference_is_the_median_of_trainer_minus_reference():
    assert paired_wilcoxon([0.1, 0.2, -0.3, 0.4]).median_difference == pytest.approx(0.15)


def test_a_comparison_without_valid_pairs_has_nan_p():
    assert math.isnan(paired_wilcoxon([float("nan")] * 3).p_value)


def test_holm_adjusts_known_p_values():
    # Sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> raised to 0.06.
    adjusted = holm_adjust([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_leaves_nan_out_of_the_family():
    # Two valid p-values: 0.5 * 2 = 1.0, then 0.6 * 1 raised to 1.0.
    adjusted = holm_adjust([0.5, float("nan"), 0.6])
    assert adjusted[0] == 1.0 and adjusted[2] == 1.0
    assert math.isnan(adjusted[1])


def test_the_mean_difference_has_the_bootstrap_interval_of_a_normal_mean():
    differences = np.linspace(-0.1, 0.3, 40)
    test = paired_wilcoxon(differences)
    # over 40 evenly spread cases the bootstrap distribution of the mean is close to normal with the
    # plug-in standard error: mean +- 1.96 std / sqrt(n), to within a tenth of that half-width
    half_width = 1.96 * differences.std() / math.sqrt(differences.size)
    assert test.mean_difference == pytest.approx(0.1)
    assert test.mean_difference_ci_low == pytest.approx(0.1 - half_width, abs=0.1 * half_width)
    assert test.mean_difference_ci_high == pytest.approx(0.1 + half_width, abs=0.1 * half_width)


@pytest.mark.parametrize("family_size, pairs", [(1, 6), (2, 7), (36, 11)])
def test_the_pairs_a_test_needs_to_reach_significance_after_holm(family_size, pairs):
    # exact two-sided Wilcoxon: p >= 2 / 2^n; Holm's bar for the smallest p is 0.05 / family size
    assert smallest_pairs_for(0.05, family_size) == pairs
    assert smallest_two_sided_p(pairs) < 0.05 / family_size <= smallest_two_sided_p(pairs - 1)


@pytest.mark.parametrize(
    "differences, method",
    [
        ([0.1, 0.2, 0.3, 0.4, -0.05], "exact"),
        ([0.1, 0.1, 0.3, 0.4, -0.05], "exact permutation (tied differences)"),
        ([0.1, 0.1, *np.linspace(0.2, 0.5, 14)], "normal approximation (tied differences, tie-corrected)"),
        (list(np.linspace(-0.2, 0.6, 60)), "normal approximation (more than 50 pairs)"),
    ],
)
def test_the_test_names_the_wilcoxon_method_that_computed_p(differences, method):
    from scipy.stats import PermutationMethod, wilcoxon

    test = paired_wilcoxon(differences)
    assert test.method == method
    scipy_method = {"exact": "exact", "exact permutation (tied differences)": PermutationMethod()}.get(
        method, "asymptotic"
    )
    assert test.p_value == pytest.approx(wilcoxon(differences, method=scipy_method, correction=True).pvalue)
