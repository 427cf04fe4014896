"""The benchmark's analysis and its output folder: tables, markdown report and figures.

`analyse` turns the per-case table into aggregates, paired tests against the reference
trainer and DSC by tumour size; `write_benchmark` writes every table as CSV (the per-case
one also as JSON), `report.md` and the figures. docs/EVALUATION.md lists every file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from nnunetv2_hlfd.evaluation.compression import ModelCosts, compression_table
from nnunetv2_hlfd.evaluation.metrics import TERCILE_NAMES, dsc_by_volume_tercile
from nnunetv2_hlfd.evaluation.protocol import PROTOCOLS
from nnunetv2_hlfd.evaluation.settings import BenchmarkSettings
from nnunetv2_hlfd.evaluation.statistics import (
    MIN_TRAININGS_FOR_A_METHOD_CLAIM,
    PAIRING_RULE,
    PRIMARY_FAMILY,
    across_fold_summary,
    compare_to_reference,
    per_fold_summary,
    reference_absent,
    smallest_pairs_for,
    write_per_case_csv,
    write_per_case_json,
)
from nnunetv2_hlfd.evaluation.timing.prediction import MEMORY_MEASURES
from nnunetv2_hlfd.evaluation.timing.verdict import verdict_note
from nnunetv2_hlfd.utilities.markdown import markdown_table

# Shown in percent, as the paper's tables do.
PAPER_LAYOUT_METRICS = (("DSC (%)", "dsc"), ("RVD (%)", "rvd"))


# --- markdown of the summary tables ----------------------------------------------------


@dataclass(frozen=True)
class TableColumn:
    """One "mean ± std" column of the results table, e.g. TableColumn("Tumour DSC", "tumour", "dsc")."""

    header: str
    class_name: str
    metric: str
    decimals: int = 3
    scale: float = 1.0  # e.g. 100 to show DSC in percent


_SPREADS = {"cases": ("case_mean", "case_std", "n_valid"), "folds": ("fold_mean", "fold_std", "n_folds")}
# Distances: one empty mask scores the image diagonal, which dominates a mean; the median does not.
MEDIAN_METRICS = ("hd95",)


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
    provenance: dict = field(default_factory=dict)  # machine, software, split (`provenance.provenance`)

    @property
    def trainers(self) -> list[str]:
        return list(dict.fromkeys(self.per_case["trainer"]))

    @property
    def class_names(self) -> list[str]:
        return list(dict.fromkeys(self.per_case["class"]))


def analyse(
    table: pd.DataFrame,
    settings: BenchmarkSettings,
    metrics: Sequence[str],
    tumour_name: str | None,
    protocol_notes: Sequence[str] = (),
    provenance: dict | None = None,
    tested_metrics: Sequence[str] | None = None,
    primary_endpoint: tuple[str, str] | None = None,
) -> BenchmarkResults:
    """`metrics` are summarised; `tested_metrics` (default: all of them) tested against the reference,
    Holm-corrected within the families `primary_endpoint` declares (`statistics.holm_family`)."""
    metrics = tuple(metrics)
    comparisons = compare_to_reference(
        table, settings.reference, tested_metrics or metrics, primary_endpoint=primary_endpoint
    )
    tumour_sizes = None
    if not PROTOCOLS[settings.protocol].tumour_only and tumour_name is not None:
        tumour_sizes = dsc_by_tumour_size(table, tumour_name)
    return BenchmarkResults(
        settings,
        metrics,
        table,
        per_fold_summary(table, metrics),
        across_fold_summary(table, metrics),
        comparisons,
        tumour_sizes,
        tuple(protocol_notes),
        provenance or {},
    )


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
    return [
        TableColumn(f"{class_name} {header}", class_name, metric, decimals=2, scale=100)
        for class_name in class_names
        for header, metric in PAPER_LAYOUT_METRICS
    ]


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
    rows = ([format_value(column, row[column]) for column in frame.columns] for _, row in frame.iterrows())
    return markdown_table(list(frame.columns), rows) + "\n"


def results_table(results: BenchmarkResults, spread: str = "cases") -> str:
    """One row per trainer: DSC and RVD per class (mean ± std) and Holm-adjusted p-values."""
    return render_markdown_table(
        results.summary, paper_layout_columns(results.class_names), results.comparisons, results.trainers, spread
    )


SPEED_COLUMNS = {
    "trainer": "Trainer",
    "device": "device",
    "hardware": "hardware",
    "threads": "threads",
    "repetitions": "rounds",
    "patch": "patch latency ms, median [quartiles]",
    "patch_peak_memory_mib": "patch peak MiB",
    "volume": "volume latency s, median of cases [range]",
    "volume_peak_memory_mib": "volume peak MiB",
}


def speed_section(speed: pd.DataFrame | None, compression: pd.DataFrame) -> list[str]:
    """The timings with their spread, the machine they ran on, and each model's speed against the teacher."""
    if speed is None:
        return ["## Speed\n", "Not measured (--no-speed).\n"]

    def volume_cell(row) -> str:
        medians = json.loads(row["volume_latency_s_per_case"]).values()
        return f"{row['volume_latency_s']:.3g} [{min(medians):.3g}-{max(medians):.3g}] ({row['n_cases']} cases)"

    table = speed.assign(
        patch=[
            f"{r.patch_latency_ms:.3g} [{r.patch_latency_q25_ms:.3g}-{r.patch_latency_q75_ms:.3g}]"
            for r in speed.itertuples()
        ],
        volume=[volume_cell(row) for _, row in speed.iterrows()],
    )[list(SPEED_COLUMNS)].rename(columns=SPEED_COLUMNS)
    ratios = [column for column in compression.columns if "_speed_vs_teacher_" in column]
    return [
        "## Speed (models timed in interleaved rounds)\n",
        (
            f"Peak memory: {'; '.join(f'{d}: {m}' for d, m in MEMORY_MEASURES.items() if d in set(speed['device']))}."
            " A ratio whose range over the rounds includes 1 is no difference. "
            f"{verdict_note(int(speed['repetitions'].min()))}.\n"
        ),
        frame_to_markdown(table),
        frame_to_markdown(compression[["trainer", *ratios]]) if ratios else "",
    ]


def provenance_section(provenance: dict) -> list[str]:
    if not provenance:
        return []
    versions = ", ".join(f"{name} {version}" for name, version in provenance["versions"].items())
    return [
        "## Machine, software and split\n",
        (
            f"CPU: {provenance['cpu']} ({provenance['cpu_count']} cores available); GPU: {provenance['gpu']}; "
            f"torch threads: {provenance['torch_threads']}. Software: {versions}; nnunetv2_hlfd commit "
            f"{provenance['nnunetv2_hlfd_commit']}. splits_final.json sha256 {provenance['splits_final_sha256']}.\n"
        ),
    ]


def render_report(results: BenchmarkResults, compression: pd.DataFrame, speed: pd.DataFrame | None = None) -> str:
    settings = results.settings
    undefined, lesions = undefined_values(results.per_case, results.metrics), lesion_counts(results.per_case)
    sections = [
        (
            f"# Benchmark of {settings.dataset} {settings.configuration}, folds "
            f"{', '.join(map(str, settings.folds))}, protocol {settings.protocol}\n"
        ),
        (
            f"Reference for the paired tests: {settings.reference}; teacher: {settings.teacher}. "
            f"Every value per case is in per_case.csv; docs/EVALUATION.md explains every column.\n"
        ),
        dataset_description(results.per_case),
        *(f"{note}\n" for note in results.protocol_notes),
        *tumour_source_note(results.per_case),
        "## Results: mean ± std [95% bootstrap CI] over all cases (p: Wilcoxon against the reference, Holm-adjusted)\n",
        (
            f"DSC convention: {EMPTY_CONVENTION_TEXT[settings.empty_convention]} (--empty-convention "
            f"{settings.empty_convention}); n: the cases with a value, which may differ between trainers. The "
            "tests, the compression table and the figure use the pairing rule instead (a class absent from both "
            "counts as 1, on the cases common to all trainers), so their DSC differs from this table's.\n"
        ),
        results_table(results, "cases"),
        "## Results: mean ± std of the fold means\n",
        results_table(results, "folds"),
        *(
            section
            for class_name in results.class_names
            for section in (
                f"## Every metric, {class_name} (mean ± std over all cases)\n",
                render_markdown_table(
                    results.summary, metric_columns_of_class(class_name, results.metrics), trainers=results.trainers
                ),
            )
        ),
        f"## Paired Wilcoxon signed-rank tests against {settings.reference}\n",
        (
            f"Cases are {PAIRING_RULE}. n_cases: the cases of the class; n_pairs: the pairs tested (n_nonzero of "
            "them ranked); n_dropped and dropped: the pairs left out and why. Differences are trainer minus reference; "
            "rank_biserial is the matched-pairs rank-biserial correlation; mean_difference has a 95% bootstrap "
            "interval over cases; smallest_p is the smallest p the exact test can give with n_nonzero pairs; "
            "method: how SciPy computed p (exact, exact permutation with tied differences, or the normal "
            "approximation); n_trainings: the folds (trainings of each model) the cases come from, "
            f"trainings_caveat where they are fewer than {MIN_TRAININGS_FOR_A_METHOD_CLAIM}; "
            "p_holm is Holm-adjusted within its family (family, family_size).\n"
        ),
        *holm_family_note(results.comparisons),
        frame_to_markdown(results.comparisons.drop(columns="reference")),
        "## Cases without a value (NaN), left out of the means above\n",
        frame_to_markdown(undefined) if len(undefined) else "None.\n",
        *(
            [
                (
                    "## Lesion detection pooled over all cases (TP: reference lesions detected, FN: missed, "
                    "FP: predicted lesions matching none)\n"
                ),
                frame_to_markdown(lesions),
            ]
            if lesions is not None
            else []
        ),
        "## DSC by tumour size (terciles of the reference tumour volume, all folds)\n",
        frame_to_markdown(results.tumour_sizes)
        if results.tumour_sizes is not None
        else "Not computed: no tumour class, the paper protocol, or fewer than three cases with tumour.\n",
        "## Compression: cost and DSC against the teacher and the reference\n",
        (
            "DSC convention: the pairing rule, a class absent from both prediction and reference counts as 1 "
            "(not the results table's --empty-convention), on the cases every model has a value for "
            f"(n = {n_cases_text(compression)}), paired as the tests pair them, so each delta is a mean paired "
            "difference on the same cases.\n"
        ),
        frame_to_markdown(compression),
        *speed_section(speed, compression),
        *provenance_section(results.provenance),
    ]
    return "\n".join(sections)


EMPTY_CONVENTION_TEXT = {
    "nnunet": "nnU-Net's, a class absent from both prediction and reference has no value and drops out",
    "kits": "KiTS's, a class absent from both prediction and reference counts as 1",
}


def n_cases_text(compression: pd.DataFrame) -> str:
    """ "kidney 10, tumor 10": the common cases of each class in the compression table."""
    columns = [c for c in compression.columns if c.startswith("n_cases_dsc_")]
    if not columns or compression.empty:
        return "n/a"
    return ", ".join(f"{c.removeprefix('n_cases_dsc_')} {int(compression[c].iloc[0])}" for c in columns)


def dataset_description(per_case: pd.DataFrame) -> str:
    """How many cases were scored, how many lack each class, and their voxel spacing."""
    cases = per_case.drop_duplicates(["fold", "case", "class"])
    absent = reference_absent(cases)
    lacking = ", ".join(
        f"{int(absent[cases['class'] == name].sum())} without {name}" for name in dict.fromkeys(cases["class"])
    )
    text = f"Dataset: {cases[['fold', 'case']].drop_duplicates().shape[0]} validation cases scored ({lacking})"
    if "spacing_mm" in cases.columns:
        spacing = cases.drop_duplicates(["fold", "case"])["spacing_mm"].str.split("x", expand=True).astype(float)
        text += (
            "; spacing (mm, array axes in nnU-Net's order) median "
            + " x ".join(f"{axis.median():.3g}" for _, axis in spacing.items())
            + ", range "
            + " x ".join(f"{axis.min():.3g}-{axis.max():.3g}" for _, axis in spacing.items())
        )
    return text + ".\n"


def undefined_values(per_case: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Per trainer, class and metric: how many cases have no value (NaN) and which."""
    rows = []
    for (trainer, class_name), cases in per_case.groupby(["trainer", "class"], sort=False):
        for metric in metrics:
            lost = cases[cases[metric].isna()]
            if len(lost):
                rows.append(
                    {
                        "trainer": trainer,
                        "class": class_name,
                        "metric": metric,
                        "n_undefined": len(lost),
                        "n_cases": len(cases),
                        "cases": ", ".join(f"fold {f} {c}" for f, c in zip(lost["fold"], lost["case"])),
                    }
                )
    return pd.DataFrame(rows, columns=["trainer", "class", "metric", "n_undefined", "n_cases", "cases"])


def lesion_counts(per_case: pd.DataFrame) -> pd.DataFrame | None:
    """Lesion detection pooled over all cases per trainer and class: detected reference lesions (TP),
    missed ones (FN), unmatched predicted lesions (FP), FP per case, and the pooled sensitivity and
    precision; None without lesion counts (paper protocol)."""
    columns = ["lesion_n_reference", "lesion_n_reference_detected", "lesion_n_predicted", "lesion_n_predicted_matched"]
    if not set(columns) <= set(per_case.columns):
        return None
    pooled = (
        per_case.groupby(["trainer", "class"], sort=False)
        .agg(n_cases=("case", "size"), **{column: (column, "sum") for column in columns})
        .reset_index()
    )
    tp, fp = pooled["lesion_n_reference_detected"], pooled["lesion_n_predicted"] - pooled["lesion_n_predicted_matched"]
    return pd.DataFrame(
        {
            "trainer": pooled["trainer"],
            "class": pooled["class"],
            "n_cases": pooled["n_cases"],
            "tp": tp,
            "fn": pooled["lesion_n_reference"] - tp,
            "fp": fp,
            "fp_per_case": fp / pooled["n_cases"],
            "sensitivity": tp / pooled["lesion_n_reference"].where(pooled["lesion_n_reference"] > 0),
            "precision": pooled["lesion_n_predicted_matched"]
            / pooled["lesion_n_predicted"].where(pooled["lesion_n_predicted"] > 0),
        }
    )


def holm_family_note(comparisons: pd.DataFrame, alpha: float = 0.05) -> list[str]:
    """The declared families, and how many non-zero pairs a test needs before it can be significant."""
    lines = []
    families = sorted(comparisons.groupby("family", sort=False), key=lambda item: item[0] != PRIMARY_FAMILY)
    for family, rows in families:
        size = int(rows["p_value"].notna().sum())
        if not size:
            continue
        endpoint = (
            ", ".join(dict.fromkeys(rows["class"] + " " + rows["metric"]))
            if family == PRIMARY_FAMILY
            else f"{rows['metric'].iloc[0]} of {', '.join(dict.fromkeys(rows['class']))}"
        )
        needed = smallest_pairs_for(alpha, size)
        reach = rows["smallest_p"].min() * size
        lines.append(
            f"- {family} ({endpoint}): {size} test(s); an exact test needs {needed} non-zero pairs to "
            f"reach p < {alpha:g} after Holm; here n_nonzero is {int(rows['n_nonzero'].min())}-"
            f"{int(rows['n_nonzero'].max())}, the smallest reachable p_holm {min(reach, 1.0):.3g}"
            + (" (nothing in this family can be significant)" if reach >= alpha else "")
        )
    return ["Holm families (the primary endpoint is declared with --primary-endpoint):\n", "\n".join(lines) + "\n"]


def tumour_source_note(per_case: pd.DataFrame) -> list[str]:
    """Paper protocol: what each trainer's tumour masks were cut from (per_case.csv: tumour_source)."""
    if "tumour_source" not in per_case.columns:
        return []
    sources = per_case.groupby("trainer", sort=False)["tumour_source"].agg(
        lambda source: ", ".join(f"{name} ({count} cases)" for name, count in source.value_counts().items())
    )
    return [
        "Tumour masks: "
        + "; ".join(f"{trainer}: {text}" for trainer, text in sources.items())
        + ". probability > 0.4: the saved probabilities (<case>.npz) cut as the reference code cuts them; "
        "segmentation: nnU-Net's argmax, where validation saved no probabilities (rerun it with --npz).\n"
    ]


# --- the output folder --------------------------------------------------------------------


def write_benchmark(output: Path, results: BenchmarkResults, costs: ModelCosts) -> pd.DataFrame:
    """Every output file into the empty folder `output`; returns the compression table."""
    from nnunetv2_hlfd.evaluation import figures

    compression = compression_table(costs, results.per_case, results.settings.teacher, results.settings.reference)
    write_per_case_csv(results.per_case, output / "per_case.csv")
    write_per_case_json(results.per_case, output / "per_case.json")
    tables = {
        "per_fold_summary": results.per_fold,
        "summary": results.summary,
        "comparisons": results.comparisons,
        "compression": compression,
        "dsc_by_tumour_size": results.tumour_sizes,
        "lesion_detection": lesion_counts(results.per_case),
        "undefined_values": undefined_values(results.per_case, results.metrics),
    }
    for name, table in tables.items():
        if table is not None:
            table.to_csv(output / f"{name}.csv", index=False)
    if costs.speed is not None:
        costs.speed.to_csv(output / "speed.csv", index=False)
    (output / "settings.json").write_text(
        json.dumps(asdict(results.settings) | {"provenance": results.provenance}, indent=2, default=str)
    )
    (output / "report.md").write_text(render_report(results, compression, costs.speed))
    figures.write_figures(
        output / "figures",
        results.per_case,
        results.metrics,
        compression,
        None if results.settings.class_tolerances_mm else results.settings.tolerance_mm,
        results.settings.protocol,
    )
    return compression


def console_summary(results: BenchmarkResults, compression: pd.DataFrame, output: Path) -> str:
    return "\n".join(
        [*results.protocol_notes, results_table(results), frame_to_markdown(compression), f"Everything is in {output}"]
    )
