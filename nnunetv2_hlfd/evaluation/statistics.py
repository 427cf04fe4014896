"""Aggregates and paired tests over a per-case metrics table: numbers only (report.py renders them).

The per-case table is a pandas DataFrame with one row per trainer, fold, case and class
(`ID_COLUMNS`) and one numeric column per metric (as `metrics.evaluate_case` names them:
dsc, rvd, hd95, ...). NaN marks a value that is undefined for that case (see the
empty-mask policy in `metrics`); every aggregate skips NaN and reports how many values
were valid. Standard deviations are sample standard deviations (ddof=1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from nnunetv2.evaluation.evaluate_predictions import label_or_region_to_key
from scipy.stats import PermutationMethod, bootstrap, rankdata, wilcoxon

from nnunetv2_hlfd.evaluation.metrics import EMPTY_MASK_RULES
from nnunetv2_hlfd.utilities.problems import first_and_more

ID_COLUMNS = ("trainer", "fold", "case", "class")
PAIR_KEYS = ["class", "fold", "case"]
SUMMARY_KEYS = ["trainer", "class", "metric"]
_MAX_NAMED_CASES = 20


class UnpairedCasesError(ValueError):
    """A trainer and the reference trainer were not evaluated on the same cases."""


# --- the per-case table -------------------------------------------------------------


def per_case_rows(
    trainer: str,
    fold: int | str,
    case: str,
    case_metrics: Mapping[int | tuple[int, ...], Mapping[str, float]],
    class_names: Mapping[int | tuple[int, ...], str] | None = None,
) -> list[dict]:
    """Rows of the per-case table from one `evaluate_case` result.

    The class column holds `class_names[label_or_region]`, or nnU-Net's own key for it
    ("1", "(1, 2)") when no name is given.
    """

    def class_name(region):
        return class_names[region] if class_names else label_or_region_to_key(region)

    return [
        {"trainer": trainer, "fold": fold, "case": case, "class": class_name(region), **values}
        for region, values in case_metrics.items()
    ]


def metric_columns(table: pd.DataFrame) -> list[str]:
    """Every numeric column that is not an identifier."""
    return [
        column for column in table.columns if column not in ID_COLUMNS and pd.api.types.is_numeric_dtype(table[column])
    ]


def check_per_case_table(table: pd.DataFrame) -> None:
    missing = [column for column in ID_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"per-case table lacks the columns {missing}; it has {list(table.columns)}")
    duplicated = table[table.duplicated(list(ID_COLUMNS), keep=False)]
    if not duplicated.empty:
        raise ValueError(
            "per-case table has several rows for: " + _name_rows(duplicated[list(ID_COLUMNS)].drop_duplicates())
        )


def _name_rows(keys: pd.DataFrame) -> str:
    named = ["[" + "; ".join(f"{column} {value}" for column, value in row.items()) + "]" for _, row in keys.iterrows()]
    return first_and_more(named, _MAX_NAMED_CASES)


def _long_format(table: pd.DataFrame, metrics: Sequence[str] | None) -> pd.DataFrame:
    check_per_case_table(table)
    metrics = list(metrics) if metrics is not None else metric_columns(table)
    long = table.melt(id_vars=list(ID_COLUMNS), value_vars=metrics, var_name="metric", value_name="value")
    long["value"] = long["value"].astype(float)
    return long


# --- aggregates ---------------------------------------------------------------------


def per_fold_summary(table: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean, std and valid count of every metric per trainer, class and fold.

    Columns: trainer, class, metric, fold, mean, std, n_valid, n_cases.
    """
    grouped = _long_format(table, metrics).groupby(SUMMARY_KEYS + ["fold"])["value"]
    return grouped.agg(mean="mean", std="std", n_valid="count", n_cases="size").reset_index()


def across_fold_summary(table: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Per trainer, class and metric: the fold means' mean and std, and all cases' mean and std.

    Columns: trainer, class, metric, fold_mean, fold_std, n_folds (folds with a valid
    mean), case_mean, case_std, case_median, case_q25, case_q75 (quartiles), n_valid, n_cases,
    case_mean_ci_low, case_mean_ci_high (95% bootstrap interval of the mean over cases).
    """
    fold_means = (
        per_fold_summary(table, metrics)
        .groupby(SUMMARY_KEYS)["mean"]
        .agg(fold_mean="mean", fold_std="std", n_folds="count")
    )
    grouped = _long_format(table, metrics).groupby(SUMMARY_KEYS)["value"]
    cases = grouped.agg(
        case_mean="mean",
        case_std="std",
        case_median="median",
        case_q25=lambda v: v.quantile(0.25),
        case_q75=lambda v: v.quantile(0.75),
        n_valid="count",
        n_cases="size",
    )
    intervals = grouped.apply(bootstrap_mean_ci)
    cases["case_mean_ci_low"], cases["case_mean_ci_high"] = intervals.str[0], intervals.str[1]
    return fold_means.join(cases).reset_index()


# --- pairing ------------------------------------------------------------------------

PAIRING_RULE = (
    "paired on the cases both were scored on: a class absent from both prediction and reference "
    "counts as correctly predicted (DSC 1, HD95 0, ...: the kits value) whatever --empty-convention "
    "gives the means, so a model that invents a structure where there is none is penalised against "
    "one that predicts nothing; a pair is dropped only where a value stays undefined (RVD of an "
    "empty reference; paper protocol: a case without reference tumour slices)"
)
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95


def pairing_values(table: pd.DataFrame, metric: str) -> pd.Series:
    """`metric` as comparisons use it (`PAIRING_RULE`): where a row's class is absent from both
    prediction and reference (both volumes 0), the empty-mask table's kits value."""
    values = table[metric].astype(float)
    rule = EMPTY_MASK_RULES.get(metric)
    if rule is None or not {"reference_volume_ml", "predicted_volume_ml"} <= set(table.columns):
        return values
    both_empty = (table["reference_volume_ml"] == 0) & (table["predicted_volume_ml"] == 0)
    return values.mask(both_empty, rule.both_empty_kits)


def reference_absent(table: pd.DataFrame) -> pd.Series:
    """Rows whose reference lacks the class: no volume, or (paper protocol) no tumour slice."""
    absent = pd.Series(False, index=table.index)
    for column in ("reference_volume_ml", "n_tumour_slices"):
        if column in table.columns:
            absent |= table[column] == 0
    return absent


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
class Pairs:
    """One comparison's paired differences (trainer minus reference) and the pairs it dropped."""

    differences: np.ndarray
    n_cases: int
    dropped: dict[str, list[str]]  # reason: the cases ("fold 0 case_001")
    n_trainings: int = 0  # the folds the paired cases come from: each fold is one training of each model

    @property
    def n_dropped(self) -> int:
        return sum(map(len, self.dropped.values()))

    def dropped_text(self) -> str:
        return "; ".join(
            f"{len(cases)} {reason} ({first_and_more(cases, _MAX_NAMED_CASES)})"
            for reason, cases in self.dropped.items()
        )


def pair_up(
    candidate: pd.DataFrame, reference: pd.DataFrame, metric: str, trainer: str, reference_trainer: str
) -> Pairs:
    """Both trainers' rows of one class, indexed alike by fold and case, paired by `PAIRING_RULE`."""
    ours, theirs = pairing_values(candidate, metric), pairing_values(reference, metric)
    valid = ours.notna() & theirs.notna()
    absent = reference_absent(reference)
    dropped: dict[str, list[str]] = {}
    for key in valid.index[~valid]:
        if absent[key]:
            reason = f"{metric} undefined: no reference {key[0]}"
        elif np.isnan(ours[key]) and np.isnan(theirs[key]):
            reason = f"{metric} undefined for both"
        else:
            reason = f"{metric} undefined for {trainer if np.isnan(ours[key]) else reference_trainer}"
        dropped.setdefault(reason, []).append(f"fold {key[1]} {key[2]}")
    folds = valid.index[valid].get_level_values("fold").unique()
    return Pairs((ours[valid] - theirs[valid]).to_numpy(), len(valid), dropped, len(folds))


# --- paired tests -------------------------------------------------------------------


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


def _trainer_values(table: pd.DataFrame, trainer: str) -> pd.DataFrame:
    return table[table["trainer"] == trainer].set_index(PAIR_KEYS).sort_index()


def _check_pairs(candidate: pd.DataFrame, reference: pd.DataFrame, trainer: str, reference_trainer: str) -> None:
    missing_from_candidate = reference.index.difference(candidate.index)
    missing_from_reference = candidate.index.difference(reference.index)
    problems = [
        f"missing for {name!r}: " + _name_rows(missing.to_frame(index=False))
        for name, missing in ((trainer, missing_from_candidate), (reference_trainer, missing_from_reference))
        if len(missing)
    ]
    if problems:
        raise UnpairedCasesError(
            f"cases of {trainer!r} and reference {reference_trainer!r} "
            "do not pair up by fold, case and class; " + "; ".join(problems)
        )


COMPARISON_COLUMNS = [
    "trainer",
    "reference",
    "class",
    "metric",
    "family",
    "n_cases",
    "n_dropped",
    "dropped",
    "n_trainings",
    *PairedTest.__dataclass_fields__,
]
# A claim about a training method is about trainings: fewer than these give no spread over them.
MIN_TRAININGS_FOR_A_METHOD_CLAIM = 5


def trainings_caveat(n_trainings: int) -> str:
    """What a p-value from cases of `n_trainings` trainings per model can claim; empty from 5 trainings."""
    if n_trainings >= MIN_TRAININGS_FOR_A_METHOD_CLAIM:
        return ""
    return (
        f"cases from {n_trainings} training(s) per model, fewer than {MIN_TRAININGS_FOR_A_METHOD_CLAIM}: "
        "p is about these trainings' predictions, not the training method (no spread over trainings)"
    )


PRIMARY_FAMILY = "primary"


def holm_family(class_name: str, metric: str, primary_endpoint: tuple[str, str] | None) -> str:
    """The Holm family of a test: the primary endpoint's tests (one per trainer) are a family of
    their own, every other metric a secondary family over classes and trainers; without a declared
    primary endpoint every test is in one family."""
    if primary_endpoint is None:
        return "all"
    return PRIMARY_FAMILY if (class_name, metric) == tuple(primary_endpoint) else f"secondary: {metric}"


def holm_within_families(p_values: pd.Series, families: pd.Series) -> np.ndarray:
    adjusted = np.full(len(p_values), math.nan)
    for _, rows in p_values.groupby(families.to_numpy(), sort=False):
        adjusted[p_values.index.get_indexer(rows.index)] = holm_adjust(rows.to_numpy())
    return adjusted


def smallest_pairs_for(alpha: float, family_size: int) -> int:
    """The fewest non-zero pairs with which an exact two-sided Wilcoxon test can reach p below
    alpha / family_size, the bar Holm sets for the family's smallest p."""
    n = 1
    while smallest_two_sided_p(n) >= alpha / family_size:
        n += 1
    return n


def compare_to_reference(
    table: pd.DataFrame,
    reference_trainer: str,
    metrics: Sequence[str] | None = None,
    alternative: str = "two-sided",
    primary_endpoint: tuple[str, str] | None = None,
) -> pd.DataFrame:
    """Paired Wilcoxon test of every other trainer against `reference_trainer`.

    Values pair by fold, case and class under `PAIRING_RULE`; differences are trainer minus
    reference, so a positive rank-biserial correlation or median difference means larger values
    (better for DSC, worse for HD95). Each row says how many cases the class has (n_cases), how
    many pairs were dropped and why (n_dropped, dropped), and how many the test used (n_pairs;
    n_nonzero of them ranked). The Holm correction (p_holm) runs within each family
    (`holm_family`: the declared primary endpoint (class, metric), one secondary family per
    metric; without one, every test compared here); family_size says how many tests it holds.
    """
    check_per_case_table(table)
    trainers = list(dict.fromkeys(table["trainer"]))
    if reference_trainer not in trainers:
        raise ValueError(f"reference trainer {reference_trainer!r} is not in the table; trainers present: {trainers}")
    metrics = list(metrics) if metrics is not None else metric_columns(table)
    reference = _trainer_values(table, reference_trainer)
    rows = []
    for trainer in (t for t in trainers if t != reference_trainer):
        candidate = _trainer_values(table, trainer)
        _check_pairs(candidate, reference, trainer, reference_trainer)
        for class_name in dict.fromkeys(candidate.index.get_level_values("class")):
            ours, theirs = candidate.xs(class_name, drop_level=False), reference.xs(class_name, drop_level=False)
            for metric in metrics:
                pairs = pair_up(ours, theirs, metric, trainer, reference_trainer)
                test = paired_wilcoxon(pairs.differences, alternative)
                rows.append(
                    {
                        "trainer": trainer,
                        "reference": reference_trainer,
                        "class": class_name,
                        "metric": metric,
                        "family": holm_family(class_name, metric, primary_endpoint),
                        "n_cases": pairs.n_cases,
                        "n_dropped": pairs.n_dropped,
                        "dropped": pairs.dropped_text(),
                        "n_trainings": pairs.n_trainings,
                        **asdict(test),
                    }
                )
    comparisons = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    comparisons.insert(
        comparisons.columns.get_loc("p_value") + 1,
        "p_holm",
        holm_within_families(comparisons["p_value"], comparisons["family"]),
    )
    comparisons.insert(
        comparisons.columns.get_loc("p_holm") + 1,
        "trainings_caveat",
        [trainings_caveat(n) for n in comparisons["n_trainings"]],
    )
    comparisons.insert(
        comparisons.columns.get_loc("family") + 1,
        "family_size",
        comparisons.groupby("family")["p_value"].transform("count"),
    )
    return comparisons


def common_case_means(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per class, each trainer's mean of `metric` (`pairing_values`) over the cases every trainer
    has a value for, so that differences between rows are paired differences of the same cases.
    Columns: class, trainer, mean, n_cases (the common cases), n_dropped."""
    check_per_case_table(table)
    values = table.assign(value=pairing_values(table, metric)).pivot(index=PAIR_KEYS, columns="trainer", values="value")
    rows = []
    for class_name, cases in values.groupby(level="class", sort=False):
        common = cases.dropna()
        rows += [
            {
                "class": class_name,
                "trainer": trainer,
                "mean": float(common[trainer].mean()),
                "n_cases": len(common),
                "n_dropped": len(cases) - len(common),
            }
            for trainer in dict.fromkeys(table["trainer"])
        ]
    return pd.DataFrame(rows, columns=["class", "trainer", "mean", "n_cases", "n_dropped"])


def write_per_case_csv(table: pd.DataFrame, path: str | Path) -> Path:
    """Every per-case value as CSV; undefined values are empty cells."""
    path = Path(path)
    table.to_csv(path, index=False)
    return path


def write_per_case_json(table: pd.DataFrame, path: str | Path) -> Path:
    """Every per-case value as a JSON list of row objects; undefined values are null."""
    path = Path(path)
    path.write_text(table.to_json(orient="records", indent=2))
    return path


def per_case_table(rows: Iterable[Mapping]) -> pd.DataFrame:
    """The per-case table from rows such as `per_case_rows` gives, checked."""
    table = pd.DataFrame(list(rows))
    check_per_case_table(table)
    return table
