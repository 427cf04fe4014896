"""The benchmark's analysis and its output folder: tables, markdown report and figures.

`analyse` turns the per-case table into aggregates, paired tests against the reference
trainer and DSC by tumour size; `write_benchmark` writes every table as CSV (the per-case
one also as JSON), `report.md` and the figures. docs/EVALUATION.md lists every file.
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from nnunetv2_hlfd.evaluation.command import BenchmarkSettings
from nnunetv2_hlfd.evaluation.compression import ModelCosts, compression_table
from nnunetv2_hlfd.evaluation.metrics import TERCILE_NAMES, dsc_by_volume_tercile
from nnunetv2_hlfd.evaluation.results import BenchmarkInputError
from nnunetv2_hlfd.evaluation.statistics import (PAIRING_RULE, TableColumn, across_fold_summary, compare_to_reference,
                                                 format_p_value, markdown_row, per_fold_summary,
                                                 render_markdown_table, write_per_case_csv,
                                                 write_per_case_json)

# Shown in percent, as the paper's tables do.
PAPER_LAYOUT_METRICS = (("DSC (%)", "dsc"), ("RVD (%)", "rvd"))


@dataclass(frozen=True)
class BenchmarkResults:
    settings: BenchmarkSettings
    metrics: tuple[str, ...]
    per_case: pd.DataFrame
    per_fold: pd.DataFrame
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    tumour_sizes: pd.DataFrame | None  # None: no tumour class, paper protocol, or under three tumour cases
    protocol_notes: tuple[str, ...] = ()  # how the protocol was applied to this dataset, e.g. the slice axis

    @property
    def trainers(self) -> list[str]:
        return list(dict.fromkeys(self.per_case["trainer"]))

    @property
    def class_names(self) -> list[str]:
        return list(dict.fromkeys(self.per_case["class"]))


def analyse(table: pd.DataFrame, settings: BenchmarkSettings, metrics: Sequence[str],
            tumour_name: str | None, protocol_notes: Sequence[str] = ()) -> BenchmarkResults:
    metrics = tuple(metrics)
    comparisons = compare_to_reference(table, settings.reference, metrics)
    tumour_sizes = None
    if settings.protocol == "standard" and tumour_name is not None:
        tumour_sizes = dsc_by_tumour_size(table, tumour_name)
    return BenchmarkResults(settings, metrics, table, per_fold_summary(table, metrics),
                            across_fold_summary(table, metrics), comparisons, tumour_sizes, tuple(protocol_notes))


def dsc_by_tumour_size(table: pd.DataFrame, tumour_name: str) -> pd.DataFrame | None:
    """Each trainer's mean tumour DSC in the small, medium and large thirds of the cases (all
    folds together) by reference tumour volume; None with fewer than three tumour cases.
    The thirds are the same cases for every trainer: all are scored on the same cases."""
    tumour = table[table["class"] == tumour_name]
    frames = []
    for trainer, rows in tumour.groupby("trainer", sort=False):
        if (rows["reference_volume_ml"] > 0).sum() < len(TERCILE_NAMES):
            return None
        frames.append(dsc_by_volume_tercile(rows["reference_volume_ml"], rows["dsc"]).assign(trainer=trainer))
    return pd.concat(frames, ignore_index=True)[["trainer", *frames[0].columns[:-1]]] if frames else None


# --- markdown -----------------------------------------------------------------------------

def paper_layout_columns(class_names: Sequence[str]) -> list[TableColumn]:
    """DSC and RVD per class, in percent: the column layout of the paper's tables."""
    return [TableColumn(f"{class_name} {header}", class_name, metric, decimals=2, scale=100)
            for class_name in class_names for header, metric in PAPER_LAYOUT_METRICS]


def metric_columns_of_class(class_name: str, metrics: Sequence[str]) -> list[TableColumn]:
    return [TableColumn(metric, class_name, metric) for metric in metrics]


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
    lines = [markdown_row(list(frame.columns)), markdown_row(["---"] * len(frame.columns))]
    lines += [markdown_row([format_value(column, row[column]) for column in frame.columns])
              for _, row in frame.iterrows()]
    return "\n".join(lines) + "\n"


def results_table(results: BenchmarkResults, spread: str = "cases") -> str:
    """One row per trainer: DSC and RVD per class (mean ± std) and Holm-adjusted p-values."""
    return render_markdown_table(results.summary, paper_layout_columns(results.class_names),
                                 results.comparisons, results.trainers, spread)


def render_report(results: BenchmarkResults, compression: pd.DataFrame) -> str:
    settings = results.settings
    sections = [
        f"# Benchmark of {settings.dataset} {settings.configuration}, folds "
        f"{', '.join(map(str, settings.folds))}, protocol {settings.protocol}\n",
        f"Reference for the paired tests: {settings.reference}; teacher: {settings.teacher}. "
        f"Every value per case is in per_case.csv; docs/EVALUATION.md explains every column.\n",
        *(f"{note}\n" for note in results.protocol_notes),
        *tumour_source_note(results.per_case),
        "## Results: mean ± std over all cases (p: Wilcoxon against the reference, Holm-adjusted)\n",
        f"n: the cases with a value under the {settings.empty_convention} empty convention, which may differ "
        "between trainers; the tests and every difference below are on paired cases.\n",
        results_table(results, "cases"),
        "## Results: mean ± std of the fold means\n",
        results_table(results, "folds"),
        *(section for class_name in results.class_names for section in (
            f"## Every metric, {class_name} (mean ± std over all cases)\n",
            render_markdown_table(results.summary, metric_columns_of_class(class_name, results.metrics),
                                  trainers=results.trainers))),
        f"## Paired Wilcoxon signed-rank tests against {settings.reference}\n",
        f"Cases are {PAIRING_RULE}. n_cases: the cases of the class; n_pairs: the pairs tested (n_nonzero of "
        "them ranked); n_dropped and dropped: the pairs left out and why. Differences are trainer minus reference; "
        "rank_biserial is the matched-pairs rank-biserial correlation; mean_difference has a 95% bootstrap "
        "interval over cases; smallest_p is the smallest p the exact test can give with n_nonzero pairs; "
        "p_holm is Holm-adjusted over every row.\n",
        frame_to_markdown(results.comparisons.drop(columns="reference")),
        "## DSC by tumour size (terciles of the reference tumour volume, all folds)\n",
        frame_to_markdown(results.tumour_sizes) if results.tumour_sizes is not None else
        "Not computed: no tumour class, the paper protocol, or fewer than three cases with tumour.\n",
        "## Compression: cost and DSC against the teacher and the reference\n",
        "DSC per class on the cases every model has a value for (n_cases_dsc_*), paired as the tests pair them, "
        "so each delta is a mean paired difference on the same cases.\n",
        frame_to_markdown(compression),
    ]
    return "\n".join(sections)


def tumour_source_note(per_case: pd.DataFrame) -> list[str]:
    """Paper protocol: what each trainer's tumour masks were cut from (per_case.csv: tumour_source)."""
    if "tumour_source" not in per_case.columns:
        return []
    sources = per_case.groupby("trainer", sort=False)["tumour_source"].agg(
        lambda source: ", ".join(f"{name} ({count} cases)" for name, count in source.value_counts().items()))
    return ["Tumour masks: " + "; ".join(f"{trainer}: {text}" for trainer, text in sources.items()) +
            ". probability > 0.4: the saved probabilities (<case>.npz) cut as the reference code cuts them; "
            "segmentation: nnU-Net's argmax, where validation saved no probabilities (rerun it with --npz).\n"]


# --- the output folder --------------------------------------------------------------------

def refuse_existing_output(output: Path, overwrite: bool) -> None:
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise BenchmarkInputError(f"the output folder {output} already exists and is not empty; pass --overwrite "
                                  f"to replace it, or choose another with -o")


def write_benchmark(output: Path, results: BenchmarkResults, costs: ModelCosts) -> pd.DataFrame:
    """Every output file into a fresh `output`; returns the compression table."""
    from nnunetv2_hlfd.evaluation import figures

    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    compression = compression_table(costs, results.per_case, results.settings.teacher, results.settings.reference)
    write_per_case_csv(results.per_case, output / "per_case.csv")
    write_per_case_json(results.per_case, output / "per_case.json")
    tables = {"per_fold_summary": results.per_fold, "summary": results.summary, "comparisons": results.comparisons,
              "compression": compression, "dsc_by_tumour_size": results.tumour_sizes}
    for name, table in tables.items():
        if table is not None:
            table.to_csv(output / f"{name}.csv", index=False)
    if costs.speed is not None:
        costs.speed.to_csv(output / "speed.csv", index=False)
    (output / "settings.json").write_text(json.dumps(asdict(results.settings), indent=2, default=str))
    (output / "report.md").write_text(render_report(results, compression))
    figures.write_figures(output / "figures", results.per_case, results.metrics, compression)
    return compression


def console_summary(results: BenchmarkResults, compression: pd.DataFrame, output: Path) -> str:
    return "\n".join([*results.protocol_notes, results_table(results), frame_to_markdown(compression),
                      f"Everything is in {output}"])
