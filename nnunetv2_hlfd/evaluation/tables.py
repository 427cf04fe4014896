"""Markdown tables of the benchmark's numbers: one "mean ± std" cell per trainer and column with the Holm-adjusted
p-values beside them, and cells formatted by what their column holds. `format_p_value` is the one p-value format
of every report (the study's too)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from nnunetv2_hlfd.evaluation.statistics import MIN_TRAININGS_FOR_A_METHOD_CLAIM
from nnunetv2_hlfd.utilities.markdown import markdown_table


@dataclass(frozen=True)
class TableColumn:
    """One "mean ± std" column of the results table, e.g. TableColumn("Tumour DSC", "tumour", "dsc")."""

    header: str
    class_name: str
    metric: str
    decimals: int = 3
    scale: float = 1.0  # e.g. 100 to show DSC in percent


_SPREADS = {"cases": ("case_mean", "case_std", "n_valid"), "folds": ("fold_mean", "fold_std", "n_folds")}


MEDIAN_METRICS = ("hd95",)


def format_p_value(p: float | None) -> str:
    """Three decimals, "<0.001" below that, "n/a" where there is no p."""
    if p is None or math.isnan(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _format_mean_std(mean: float, std: float, column: TableColumn) -> str:
    if math.isnan(mean):
        return "n/a"
    spread = "n/a" if math.isnan(std) else f"{std * column.scale:.{column.decimals}f}"
    return f"{mean * column.scale:.{column.decimals}f} ± {spread}"


def _lookup(frame: pd.DataFrame, trainer: str, column: TableColumn) -> pd.Series | None:
    hits = frame[
        (frame["trainer"] == trainer) & (frame["class"] == column.class_name) & (frame["metric"] == column.metric)
    ]
    return None if hits.empty else hits.iloc[0]


def _mean_std_cell(summary: pd.DataFrame, trainer: str, column: TableColumn, spread: str) -> str:
    row = _lookup(summary, trainer, column)
    if row is None:
        return "n/a"
    mean_column, std_column, count_column = _SPREADS[spread]
    cell = _format_mean_std(float(row[mean_column]), float(row[std_column]), column)
    if spread == "cases" and "case_mean_ci_low" in row and not math.isnan(row["case_mean_ci_low"]):
        cell += " [{:.{d}f}, {:.{d}f}]".format(
            row["case_mean_ci_low"] * column.scale, row["case_mean_ci_high"] * column.scale, d=column.decimals
        )
    if column.metric in MEDIAN_METRICS and spread == "cases" and "case_median" in row:
        cell += f"; median {_format_median_iqr(row, column)}"
    return f"{cell} (n={int(row[count_column])})"


def _format_median_iqr(row: pd.Series, column: TableColumn) -> str:
    if math.isnan(row["case_median"]):
        return "n/a"
    return "{:.{d}f} [{:.{d}f}, {:.{d}f}]".format(
        *(row[c] * column.scale for c in ("case_median", "case_q25", "case_q75")), d=column.decimals
    )


def _p_value_cell(comparisons: pd.DataFrame, trainer: str, column: TableColumn) -> str:
    if (comparisons["reference"] == trainer).any():
        return "ref"
    row = _lookup(comparisons, trainer, column)
    if row is None:
        return "n/a"
    p = format_p_value(float(row["p_holm"]))
    few = "n_trainings" in row and row["n_trainings"] < MIN_TRAININGS_FOR_A_METHOD_CLAIM
    return f"{p} ({int(row['n_trainings'])} training(s) per model: no spread over trainings)" if few else p


def render_markdown_table(
    summary: pd.DataFrame,
    columns: Sequence[TableColumn],
    comparisons: pd.DataFrame | None = None,
    trainers: Sequence[str] | None = None,
    spread: str = "cases",
) -> str:
    """One row per trainer, one "mean ± std (n=...)" column per `TableColumn`.

    `summary` comes from `across_fold_summary`; `spread` "cases" shows the mean and std
    over all cases (n: the cases with a value), "folds" those of the fold means (n: folds). With `comparisons` (from
    `compare_to_reference`) a Holm-adjusted p-value column follows for each column;
    the reference trainer's cells read "ref".
    """
    if spread not in _SPREADS:
        raise ValueError(f"spread must be one of {sorted(_SPREADS)}, got {spread!r}")
    trainers = list(trainers) if trainers is not None else list(dict.fromkeys(summary["trainer"]))
    headers = ["Trainer", *(column.header for column in columns)]
    if comparisons is not None:
        headers += [f"p ({column.header})" for column in columns]
    rows = []
    for trainer in trainers:
        cells = [trainer, *(_mean_std_cell(summary, trainer, column, spread) for column in columns)]
        if comparisons is not None:
            cells += [_p_value_cell(comparisons, trainer, column) for column in columns]
        rows.append(cells)
    return markdown_table(headers, rows) + "\n"


def format_cell(column: str, value) -> str:
    """Counts with thousands separators, cost ratios in percent, DSC deltas signed."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if column.startswith("p_"):
        return format_p_value(float(value))
    if column.startswith("delta_"):
        return f"{value:+.4f}"
    if column.endswith("_vs_teacher"):
        return f"{value:.1%}"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.4g}"


def frame_to_markdown(frame: pd.DataFrame, format_value: Callable[[str, object], str] = format_cell) -> str:
    rows = ([format_value(column, row[column]) for column in frame.columns] for _, row in frame.iterrows())
    return markdown_table(list(frame.columns), rows) + "\n"
