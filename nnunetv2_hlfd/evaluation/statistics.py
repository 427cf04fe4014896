"""Aggregates of the per-case table (`per_case`) and its comparisons with the reference trainer: numbers only
(`report` renders them; the tests themselves are in `paired_tests`).

NaN marks a value that is undefined for that case (see the empty-mask policy in `metrics`); every aggregate
skips NaN and reports how many values were valid. Standard deviations are sample standard deviations (ddof=1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from nnunetv2_hlfd.evaluation.empty_masks import EMPTY_MASK_RULES
from nnunetv2_hlfd.evaluation.paired_tests import (
    PairedTest,
    bootstrap_mean_ci,
    holm_adjust,
    paired_wilcoxon,
)
from nnunetv2_hlfd.evaluation.per_case import (
    MAX_NAMED_CASES,
    check_per_case_table,
    long_format,
    metric_columns,
    name_rows,
)
from nnunetv2_hlfd.utilities.problems import first_and_more

PAIR_KEYS = ["class", "fold", "case"]
SUMMARY_KEYS = ["trainer", "class", "metric"]


class UnpairedCasesError(ValueError):
    """A trainer and the reference trainer were not evaluated on the same cases."""


# --- aggregates ---------------------------------------------------------------------


def per_fold_summary(table: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean, std and valid count of every metric per trainer, class and fold.

    Columns: trainer, class, metric, fold, mean, std, n_valid, n_cases.
    """
    grouped = long_format(table, metrics).groupby(SUMMARY_KEYS + ["fold"])["value"]
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
    grouped = long_format(table, metrics).groupby(SUMMARY_KEYS)["value"]
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
            f"{len(cases)} {reason} ({first_and_more(cases, MAX_NAMED_CASES)})"
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


# --- comparisons with the reference -----------------------------------------------


def _trainer_values(table: pd.DataFrame, trainer: str) -> pd.DataFrame:
    return table[table["trainer"] == trainer].set_index(PAIR_KEYS).sort_index()


def _check_pairs(candidate: pd.DataFrame, reference: pd.DataFrame, trainer: str, reference_trainer: str) -> None:
    missing_from_candidate = reference.index.difference(candidate.index)
    missing_from_reference = candidate.index.difference(reference.index)
    problems = [
        f"missing for {name!r}: " + name_rows(missing.to_frame(index=False))
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
