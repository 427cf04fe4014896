"""The benchmark's PNG figures: per-case box plots, and accuracy against cost.

Figures are drawn on matplotlib `Figure` objects directly (no pyplot), so nothing depends
on, or changes, the session's display backend, and in matplotlib's default style: nnU-Net's
progress plot sets seaborn's font scale 2.5 for the whole process.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import style
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from nnunetv2_hlfd.evaluation.paired_tests import bootstrap_mean_ci
from nnunetv2_hlfd.evaluation.protocol import PROTOCOLS
from nnunetv2_hlfd.evaluation.statistics import pairing_values

COST_AXES = (
    ("parameters", "parameters"),
    ("macs_per_patch", "multiply-adds per patch"),
    ("volume_latency_s_cpu", "CPU latency per validation volume (s, median)"),
    ("volume_latency_s_cuda", "GPU latency per validation volume (s, median)"),
)
DPI = 120
MAX_CASES_SHOWN_AS_POINTS = 40  # beyond, the points hide the boxes


def metric_label(metric: str, tolerance_mm: float | None, protocol: str) -> str:
    """The y axis of a metric, with its unit or tolerance."""
    labels = PROTOCOLS[protocol].metric_labels
    if labels and metric in labels:
        return labels[metric]
    return {
        "dsc": "DSC",
        "rvd": "RVD (|P|/|G| - 1)",
        "abs_rvd": "|RVD|",
        "voe": "VOE (1 - IoU)",
        "hd95": "HD95 (mm)",
        "surface_dice": f"surface Dice at {tolerance_mm:g} mm"
        if tolerance_mm is not None
        else "surface Dice (tolerance per class: report.md)",
        "lesion_sensitivity": "lesion sensitivity",
        "lesion_precision": "lesion precision",
        "lesion_f1": "lesion F1",
    }.get(metric, metric)


def write_figures(
    folder: Path,
    per_case: pd.DataFrame,
    metrics: Sequence[str],
    compression: pd.DataFrame,
    tolerance_mm: float | None = 1.0,
    protocol: str = "standard",
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    with style.context("default"):
        paths = [
            box_plot(per_case, metric, folder / f"box_{metric}.png", metric_label(metric, tolerance_mm, protocol))
            for metric in metrics
        ]
        return paths + [accuracy_versus_cost(compression, per_case, folder / "accuracy_vs_cost.png", protocol)]


def box_plot(per_case: pd.DataFrame, metric: str, path: Path, label: str | None = None) -> Path:
    """`draw_box_plot`'s figure written to `path`."""
    draw_box_plot(per_case, metric, label).savefig(path, dpi=DPI)
    return path


def draw_box_plot(per_case: pd.DataFrame, metric: str, label: str | None = None) -> Figure:
    """One panel per class, one box of per-case values per trainer (n below each), the cases as
    points where there are few; undefined (NaN) values left out."""
    trainers = list(dict.fromkeys(per_case["trainer"]))
    classes = list(dict.fromkeys(per_case["class"]))
    figure = Figure(figsize=(1.6 + 1.3 * len(trainers) * len(classes), 4.4), layout="constrained")
    for axes, class_name in zip(figure.subplots(1, len(classes), squeeze=False)[0], classes):
        rows = per_case[per_case["class"] == class_name]
        values = [rows.loc[rows["trainer"] == trainer, metric].dropna().to_numpy() for trainer in trainers]
        as_points = max(map(len, values), default=0) <= MAX_CASES_SHOWN_AS_POINTS
        axes.boxplot(
            values,
            showmeans=True,
            showfliers=not as_points,  # the points include the outliers
            meanprops={"marker": "^", "markerfacecolor": "green", "markeredgecolor": "green"},
        )
        jitter = np.random.default_rng(0)
        for position, case_values in enumerate(values, start=1):
            if as_points:
                axes.scatter(
                    position + jitter.uniform(-0.12, 0.12, len(case_values)),
                    case_values,
                    s=10,
                    color="tab:blue",
                    alpha=0.6,
                    zorder=3,
                )
        axes.set_xticks(
            range(1, len(trainers) + 1),
            [f"{trainer}\n(n={len(v)})" for trainer, v in zip(trainers, values)],
            rotation=30,
            ha="right",
            fontsize=8,
        )
        axes.set_title(class_name)
        axes.set_ylabel(label or metric)
    figure.legend(
        handles=[
            Line2D([], [], color="tab:orange", label="median"),
            Line2D([], [], marker="^", color="green", linestyle="", label="mean"),
            Line2D([], [], marker="o", color="tab:blue", alpha=0.6, linestyle="", label="one case"),
        ],
        loc="outside lower center",
        ncols=3,
        fontsize=8,
    )
    return figure


def dsc_with_intervals(per_case: pd.DataFrame, trainers: Sequence[str]) -> pd.DataFrame:
    """Per trainer: the mean over classes of DSC per case on the cases every trainer has (as the
    compression table averages), its mean and 95% bootstrap interval."""
    values = (
        per_case.assign(value=pairing_values(per_case, "dsc"))
        .pivot(index=["fold", "case", "class"], columns="trainer", values="value")
        .dropna()
    )
    per_case_mean = values.groupby(level=["fold", "case"]).mean()
    rows = {
        trainer: (per_case_mean[trainer].mean(), *bootstrap_mean_ci(per_case_mean[trainer]), len(per_case_mean))
        for trainer in trainers
    }
    return pd.DataFrame.from_dict(rows, orient="index", columns=["mean", "low", "high", "n"])


def dsc_axis_label(protocol: str, n_cases: int) -> str:
    """The DSC axis says its convention and n, as the compression table's: the pairing rule's DSC."""
    return (
        f"{PROTOCOLS[protocol].dsc_axis}\n(n = {n_cases} common cases; a class absent from both counts as 1;"
        "\n95% bootstrap CI)"
    )


def latency_range(row: pd.Series, column: str) -> list[list[float]] | None:
    """x error bars of a volume latency: the range over rounds of each round's median over the cases."""
    if not column.startswith("volume_latency_s_"):
        return None
    device = column.removeprefix("volume_latency_s_")
    low, high = row.get(f"volume_latency_min_s_{device}"), row.get(f"volume_latency_max_s_{device}")
    if low is None or high is None or np.isnan(low) or np.isnan(high):
        return None
    return [[row[column] - low], [high - row[column]]]


def accuracy_versus_cost(
    compression: pd.DataFrame, per_case: pd.DataFrame, path: Path, protocol: str = "standard"
) -> Path:
    """`draw_accuracy_versus_cost`'s figure written to `path`."""
    draw_accuracy_versus_cost(compression, per_case, protocol).savefig(path, dpi=DPI)
    return path


def draw_accuracy_versus_cost(compression: pd.DataFrame, per_case: pd.DataFrame, protocol: str = "standard") -> Figure:
    """Mean DSC over classes (95% bootstrap interval over cases) against each cost measured, one
    labelled point per model."""
    axes_present = [(column, label) for column, label in COST_AXES if column in compression.columns]
    dsc = dsc_with_intervals(per_case, compression["trainer"])
    figure = Figure(figsize=(4.8 * len(axes_present), 4.2), layout="constrained")
    for axes, (column, label) in zip(figure.subplots(1, len(axes_present), squeeze=False)[0], axes_present):
        for _, row in compression.iterrows():
            mean, low, high = dsc.loc[row["trainer"], ["mean", "low", "high"]]
            errors = None if np.isnan(low) else [[mean - low], [high - mean]]
            axes.errorbar(row[column], mean, xerr=latency_range(row, column), yerr=errors, fmt="o", capsize=3)
            rightmost = row[column] == compression[column].max()  # its label goes left, inside the axes
            axes.annotate(
                row["trainer"],
                (row[column], mean),
                fontsize=7,
                xytext=(-5 if rightmost else 5, 4),
                textcoords="offset points",
                ha="right" if rightmost else "left",
            )
        axes.set_xscale("log")
        axes.margins(x=0.3, y=0.15)  # room for the labels inside the axes
        axes.set_xlabel(label + (" [range over rounds]" if column.startswith("volume_latency_s_") else ""))
        axes.set_ylabel(dsc_axis_label(protocol, int(dsc["n"].max())))
    return figure
