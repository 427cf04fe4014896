"""Paired tests of one comparison's differences, numbers only: SciPy's Wilcoxon signed-rank test with the method
named as SciPy chooses it, the matched-pairs rank-biserial correlation, the bootstrap interval of a mean, and the
Holm adjustment with the fewest pairs that can pass it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import PermutationMethod, bootstrap, rankdata, wilcoxon

BOOTSTRAP_RESAMPLES = 2000


BOOTSTRAP_SEED = 0


CONFIDENCE = 0.95


def bootstrap_mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over cases (SciPy, fixed seed); NaN under two values."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size < 2:
        return math.nan, math.nan
    interval = bootstrap(
        (values,),
        np.mean,
        confidence_level=confidence,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile",
        rng=BOOTSTRAP_SEED,
    ).confidence_interval
    return float(interval.low), float(interval.high)


@dataclass(frozen=True)
class PairedTest:
    """Wilcoxon signed-rank test of paired differences (trainer minus reference)."""

    n_pairs: int
    n_nonzero: int  # the pairs the test ranks
    statistic: float
    p_value: float
    smallest_p: float  # the smallest two-sided p an exact test of n_nonzero pairs can give
    method: str  # how p was computed (`wilcoxon_method`)
    rank_biserial: float
    median_difference: float
    mean_difference: float
    mean_difference_ci_low: float  # 95% bootstrap interval over cases
    mean_difference_ci_high: float


def rank_biserial(differences: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation (Kerby 2014) of non-zero differences.

    (R+ - R-) / (R+ + R-) with R± the rank sums of |d| of the positive and negative
    differences: +1 when every difference is positive, -1 when every one is negative.
    """
    nonzero = differences[differences != 0]
    if nonzero.size == 0:
        return 0.0
    ranks = rankdata(np.abs(nonzero))
    return float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())


def smallest_two_sided_p(n_nonzero: int) -> float:
    """2 / 2^n: every one of n non-zero differences on one side, the most extreme outcome."""
    return min(1.0, 2.0 / 2**n_nonzero) if n_nonzero else 1.0


EXACT_WILCOXON_LIMIT = 50  # SciPy's own: above it the exact distribution is not enumerated


PERMUTATION_LIMIT = 13  # 2^13 sign flips fit in SciPy's 9999 resamples, so the permutation test is exhaustive


def wilcoxon_method(nonzero: np.ndarray) -> tuple[str, object]:
    """(what the report says, SciPy's `method`) for non-zero differences, chosen here as SciPy >= 1.15's
    "auto" chooses, so the report can name it: the exact distribution without ties, an exhaustive
    permutation test with tied |differences| up to 13 pairs, else the normal approximation (tie-corrected,
    with continuity correction)."""
    has_ties = np.unique(np.abs(nonzero)).size < nonzero.size
    if nonzero.size > EXACT_WILCOXON_LIMIT:
        return f"normal approximation (more than {EXACT_WILCOXON_LIMIT} pairs)", "asymptotic"
    if not has_ties:
        return "exact", "exact"
    if nonzero.size <= PERMUTATION_LIMIT:
        return "exact permutation (tied differences)", PermutationMethod()
    return "normal approximation (tied differences, tie-corrected)", "asymptotic"


def paired_wilcoxon(differences: Sequence[float], alternative: str = "two-sided") -> PairedTest:
    """Wilcoxon signed-rank test; pairs with a NaN difference are left out.

    Zero differences are dropped before ranking (Wilcoxon's method, SciPy's default).
    Without any non-zero difference there is no evidence of a difference: p = 1.
    Without any valid pair every result is NaN.
    """
    d = np.asarray(differences, dtype=float)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return PairedTest(0, 0, math.nan, math.nan, math.nan, "none (no pair)", *(math.nan,) * 5)
    nonzero = d[d != 0]
    mean_and_ci = (float(d.mean()), *bootstrap_mean_ci(d))
    if nonzero.size == 0:
        return PairedTest(int(d.size), 0, 0.0, 1.0, 1.0, "none (no non-zero difference)", 0.0, 0.0, *mean_and_ci)
    method, scipy_method = wilcoxon_method(nonzero)
    result = wilcoxon(nonzero, alternative=alternative, method=scipy_method, correction=True)  # the normal approx. only
    return PairedTest(
        int(d.size),
        int(nonzero.size),
        float(result.statistic),
        float(result.pvalue),
        smallest_two_sided_p(nonzero.size),
        method,
        rank_biserial(d),
        float(np.median(d)),
        *mean_and_ci,
    )


def holm_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in input order; NaN stays NaN and is not counted.

    The i-th smallest of m p-values becomes max over j <= i of min(1, (m - j + 1) p_(j)).
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    scaled = (order.size - np.arange(order.size)) * p[order]
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def smallest_pairs_for(alpha: float, family_size: int) -> int:
    """The fewest non-zero pairs with which an exact two-sided Wilcoxon test can reach p below
    alpha / family_size, the bar Holm sets for the family's smallest p."""
    n = 1
    while smallest_two_sided_p(n) >= alpha / family_size:
        n += 1
    return n
