"""The benchmark's PNG figures: per-case box plots, and accuracy against cost.

Figures are drawn on matplotlib `Figure` objects directly (no pyplot), so nothing depends
on, or changes, the session's display backend, and in matplotlib's default style: nnU-Net's
progress plot sets seaborn's font scale 2.5 for the whole process.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd
from matplotlib import style
from matplotlib.figure import Figure

COST_AXES = (("parameters", "parameters"), ("macs_per_patch", "multiply-adds per patch"),
             ("volume_latency_s_cpu", "CPU latency per validation volume (s)"),
             ("volume_latency_s_cuda", "GPU latency per validation volume (s)"))
DPI = 120


def write_figures(folder: Path, per_case: pd.DataFrame, metrics: Sequence[str], compression: pd.DataFrame) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    with style.context("default"):
        paths = [box_plot(per_case, metric, folder / f"box_{metric}.png") for metric in metrics]
        return paths + [accuracy_versus_cost(compression, folder / "accuracy_vs_cost.png")]


def box_plot(per_case: pd.DataFrame, metric: str, path: Path) -> Path:
    """One panel per class, one box of per-case values per trainer; undefined (NaN) values left out."""
    trainers = list(dict.fromkeys(per_case["trainer"]))
    classes = list(dict.fromkeys(per_case["class"]))
    figure = Figure(figsize=(1.2 + 1.1 * len(trainers) * len(classes), 4), layout="constrained")
    for axes, class_name in zip(figure.subplots(1, len(classes), squeeze=False)[0], classes):
        rows = per_case[per_case["class"] == class_name]
        values = [rows.loc[rows["trainer"] == trainer, metric].dropna().to_numpy() for trainer in trainers]
        axes.boxplot(values, showmeans=True)
        axes.set_xticks(range(1, len(trainers) + 1), trainers, rotation=30, ha="right", fontsize=8)
        axes.set_title(class_name)
        axes.set_ylabel(metric)
    figure.savefig(path, dpi=DPI)
    return path


def accuracy_versus_cost(compression: pd.DataFrame, path: Path) -> Path:
    """Mean DSC over classes against each cost measured, one labelled point per model."""
    axes_present = [(column, label) for column, label in COST_AXES if column in compression.columns]
    figure = Figure(figsize=(4.5 * len(axes_present), 4), layout="constrained")
    for axes, (column, label) in zip(figure.subplots(1, len(axes_present), squeeze=False)[0], axes_present):
        axes.scatter(compression[column], compression["dsc_mean"])
        for _, row in compression.iterrows():
            axes.annotate(row["trainer"], (row[column], row["dsc_mean"]), fontsize=7,
                          xytext=(3, 3), textcoords="offset points")
        axes.set_xscale("log")
        axes.set_xlabel(label)
        axes.set_ylabel("mean DSC over classes")
    figure.savefig(path, dpi=DPI)
    return path
