"""Aggregates, paired tests and reports over a per-case metrics table.

The per-case table is a pandas DataFrame with one row per trainer, fold, case and class
(`ID_COLUMNS`) and one numeric column per metric (as `metrics.evaluate_case` names them:
dsc, rvd, hd95, ...). NaN marks a value that is undefined for that case (see the
empty-mask policy in `metrics`); every aggregate skips NaN and reports how many values
were valid. Standard deviations are sample standard deviations (ddof=1).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from nnunetv2.evaluation.evaluate_predictions import label_or_region_to_key
from scipy.stats import rankdata, wilcoxon

ID_COLUMNS = ("trainer", "fold", "case", "class")
PAIR_KEYS = ["class", "fold", "case"]
SUMMARY_KEYS = ["trainer", "class", "metric"]
_MAX_NAMED_CASES = 20


class UnpairedCasesError(ValueError):
    """A trainer and the reference trainer were not evaluated on the same cases."""


# --- the per-case table -------------------------------------------------------------

def per_case_rows(trainer: str, fold: int | str, case: str,
                  case_metrics: Mapping[int | tuple[int, ...], Mapping[str, float]],
                  class_names: Mapping[int | tuple[int, ...], str] | None = None) -> list[dict]:
    """Rows of the per-case table from one `evaluate_case` result.

    The class column holds `class_names[label_or_region]`, or nnU-Net's own key for it
    ("1", "(1, 2)") when no name is given.
    """
    def class_name(region):
        return class_names[region] if class_names else label_or_region_to_key(region)

    return [{"trainer": trainer, "fold": fold, "case": case, "class": class_name(region),
             **values} for region, values in case_metrics.items()]


def metric_columns(table: pd.DataFrame) -> list[str]:
    """Every numeric column that is not an identifier."""
    return [column for column in table.columns
            if column not in ID_COLUMNS and pd.api.types.is_numeric_dtype(table[column])]


def check_per_case_table(table: pd.DataFrame) -> None:
    missing = [column for column in ID_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"per-case table lacks the columns {missing}; it has {list(table.columns)}")
    duplicated = table[table.duplicated(list(ID_COLUMNS), keep=False)]
    if not duplicated.empty:
        raise ValueError("per-case table has several rows for: "
                         + _name_rows(duplicated[list(ID_COLUMNS)].drop_duplicates()))


def _name_rows(keys: pd.DataFrame) -> str:
    named = ["; ".join(f"{column} {value}" for column, value in row.items())
             for _, row in keys.head(_MAX_NAMED_CASES).iterrows()]
    more = len(keys) - len(named)
    return ", ".join(f"[{name}]" for name in named) + (f" and {more} more" if more > 0 else "")


def _long_format(table: pd.DataFrame, metrics: Sequence[str] | None) -> pd.DataFrame:
    check_per_case_table(table)
    metrics = list(metrics) if metrics is not None else metric_columns(table)
    long = table.melt(id_vars=list(ID_COLUMNS), value_vars=metrics, var_name="metric",
                      value_name="value")
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
    mean), case_mean, case_std, n_valid, n_cases.
    """
    fold_means = per_fold_summary(table, metrics).groupby(SUMMARY_KEYS)["mean"].agg(
        fold_mean="mean", fold_std="std", n_folds="count")
    cases = _long_format(table, metrics).groupby(SUMMARY_KEYS)["value"].agg(
        case_mean="mean", case_std="std", n_valid="count", n_cases="size")
    return fold_means.join(cases).reset_index()


# --- paired tests -------------------------------------------------------------------

@dataclass(frozen=True)
class PairedTest:
    """Wilcoxon signed-rank test of paired differences (trainer minus reference)."""

    n_pairs: int
    statistic: float
    p_value: float
    rank_biserial: float
    median_difference: float


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


def paired_wilcoxon(differences: Sequence[float], alternative: str = "two-sided") -> PairedTest:
    """Wilcoxon signed-rank test; pairs with a NaN difference are left out.

    Zero differences are dropped before ranking (Wilcoxon's method, SciPy's default).
    Without any non-zero difference there is no evidence of a difference: p = 1.
    Without any valid pair every result is NaN.
    """
    d = np.asarray(differences, dtype=float)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return PairedTest(0, math.nan, math.nan, math.nan, math.nan)
    nonzero = d[d != 0]
    if nonzero.size == 0:
        return PairedTest(int(d.size), 0.0, 1.0, 0.0, 0.0)
    result = wilcoxon(nonzero, alternative=alternative)
    return PairedTest(int(d.size), float(result.statistic), float(result.pvalue),
                      rank_biserial(d), float(np.median(d)))


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


def _check_pairs(candidate: pd.DataFrame, reference: pd.DataFrame, trainer: str,
                 reference_trainer: str) -> None:
    missing_from_candidate = reference.index.difference(candidate.index)
    missing_from_reference = candidate.index.difference(reference.index)
    problems = [f"missing for {name!r}: " + _name_rows(missing.to_frame(index=False))
                for name, missing in ((trainer, missing_from_candidate),
                                      (reference_trainer, missing_from_reference))
                if len(missing)]
    if problems:
        raise UnpairedCasesError(f"cases of {trainer!r} and reference {reference_trainer!r} "
                                 "do not pair up by fold, case and class; " + "; ".join(problems))


def compare_to_reference(table: pd.DataFrame, reference_trainer: str,
                         metrics: Sequence[str] | None = None,
                         alternative: str = "two-sided") -> pd.DataFrame:
    """Paired Wilcoxon test of every other trainer against `reference_trainer`.

    Values pair by fold, case and class; differences are trainer minus reference, so a
    positive rank-biserial correlation or median difference means larger values (better
    for DSC, worse for HD95). The Holm correction (p_holm) runs over the whole family:
    every trainer, class and metric compared here.
    Columns: trainer, reference, class, metric, n_pairs, statistic, p_value, p_holm,
    rank_biserial, median_difference.
    """
    check_per_case_table(table)
    trainers = list(dict.fromkeys(table["trainer"]))
    if reference_trainer not in trainers:
        raise ValueError(f"reference trainer {reference_trainer!r} is not in the table; "
                         f"trainers present: {trainers}")
    metrics = list(metrics) if metrics is not None else metric_columns(table)
    reference = _trainer_values(table, reference_trainer)
    rows = []
    for trainer in (t for t in trainers if t != reference_trainer):
        candidate = _trainer_values(table, trainer)
        _check_pairs(candidate, reference, trainer, reference_trainer)
        differences = candidate[metrics].astype(float) - reference[metrics].astype(float)
        for class_name, class_differences in differences.groupby(level="class", sort=False):
            for metric in metrics:
                test = paired_wilcoxon(class_differences[metric].to_numpy(), alternative)
                rows.append({"trainer": trainer, "reference": reference_trainer,
                             "class": class_name, "metric": metric, **asdict(test)})
    comparisons = pd.DataFrame(rows, columns=["trainer", "reference", "class", "metric",
                                              *PairedTest.__dataclass_fields__])
    comparisons.insert(comparisons.columns.get_loc("p_value") + 1, "p_holm",
                       holm_adjust(comparisons["p_value"].to_numpy()))
    return comparisons


# --- reports ------------------------------------------------------------------------

@dataclass(frozen=True)
class TableColumn:
    """One "mean ± std" column of the results table, e.g. TableColumn("Tumour DSC", "tumour", "dsc")."""

    header: str
    class_name: str
    metric: str
    decimals: int = 3
    scale: float = 1.0  # e.g. 100 to show DSC in percent


_SPREADS = {"cases": ("case_mean", "case_std"), "folds": ("fold_mean", "fold_std")}


def format_p_value(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _format_mean_std(mean: float, std: float, column: TableColumn) -> str:
    if math.isnan(mean):
        return "n/a"
    spread = "n/a" if math.isnan(std) else f"{std * column.scale:.{column.decimals}f}"
    return f"{mean * column.scale:.{column.decimals}f} ± {spread}"


def _lookup(frame: pd.DataFrame, trainer: str, column: TableColumn) -> pd.Series | None:
    hits = frame[(frame["trainer"] == trainer) & (frame["class"] == column.class_name)
                 & (frame["metric"] == column.metric)]
    return None if hits.empty else hits.iloc[0]


def _mean_std_cell(summary: pd.DataFrame, trainer: str, column: TableColumn,
                   spread: str) -> str:
    row = _lookup(summary, trainer, column)
    if row is None:
        return "n/a"
    mean_column, std_column = _SPREADS[spread]
    return _format_mean_std(float(row[mean_column]), float(row[std_column]), column)


def _p_value_cell(comparisons: pd.DataFrame, trainer: str, column: TableColumn) -> str:
    if (comparisons["reference"] == trainer).any():
        return "ref"
    row = _lookup(comparisons, trainer, column)
    return "n/a" if row is None else format_p_value(float(row["p_holm"]))


def markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def render_markdown_table(summary: pd.DataFrame, columns: Sequence[TableColumn],
                          comparisons: pd.DataFrame | None = None,
                          trainers: Sequence[str] | None = None,
                          spread: str = "cases") -> str:
    """One row per trainer, one "mean ± std" column per `TableColumn`.

    `summary` comes from `across_fold_summary`; `spread` "cases" shows the mean and std
    over all cases, "folds" those of the fold means. With `comparisons` (from
    `compare_to_reference`) a Holm-adjusted p-value column follows for each column;
    the reference trainer's cells read "ref".
    """
    if spread not in _SPREADS:
        raise ValueError(f"spread must be one of {sorted(_SPREADS)}, got {spread!r}")
    trainers = list(trainers) if trainers is not None else list(dict.fromkeys(summary["trainer"]))
    headers = ["Trainer", *(column.header for column in columns)]
    if comparisons is not None:
        headers += [f"p ({column.header})" for column in columns]
    lines = [markdown_row(headers), markdown_row(["---"] * len(headers))]
    for trainer in trainers:
        cells = [trainer, *(_mean_std_cell(summary, trainer, column, spread) for column in columns)]
        if comparisons is not None:
            cells += [_p_value_cell(comparisons, trainer, column) for column in columns]
        lines.append(markdown_row(cells))
    return "\n".join(lines) + "\n"


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
