"""The benchmark's output folder, rendered from its analysis (`analysis.BenchmarkResults`) and the compression
table: `write_benchmark` writes every table as CSV (the per-case one also as JSON), `report.md` and the figures.
It computes nothing itself. docs/EVALUATION.md lists every file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from nnunetv2_hlfd.evaluation.analysis import BenchmarkResults
from nnunetv2_hlfd.evaluation.compression import ModelCosts
from nnunetv2_hlfd.evaluation.paired_tests import smallest_pairs_for
from nnunetv2_hlfd.evaluation.per_case import write_per_case_csv, write_per_case_json
from nnunetv2_hlfd.evaluation.statistics import (
    MIN_TRAININGS_FOR_A_METHOD_CLAIM,
    PAIRING_RULE,
    PRIMARY_FAMILY,
    reference_absent,
)
from nnunetv2_hlfd.evaluation.tables import TableColumn, frame_to_markdown, render_markdown_table
from nnunetv2_hlfd.evaluation.timing.prediction import MEMORY_MEASURES
from nnunetv2_hlfd.evaluation.timing.verdict import verdict_note

# Shown in percent, as the paper's tables do.
PAPER_LAYOUT_METRICS = (("DSC (%)", "dsc"), ("RVD (%)", "rvd"))


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
    undefined, lesions = results.undefined, results.lesion_detection
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


def write_benchmark(output: Path, results: BenchmarkResults, costs: ModelCosts, compression: pd.DataFrame) -> None:
    """Every output file into the empty folder `output`; `compression`: `compression.compression_table`."""
    from nnunetv2_hlfd.evaluation import figures

    write_per_case_csv(results.per_case, output / "per_case.csv")
    write_per_case_json(results.per_case, output / "per_case.json")
    tables = {
        "per_fold_summary": results.per_fold,
        "summary": results.summary,
        "comparisons": results.comparisons,
        "compression": compression,
        "dsc_by_tumour_size": results.tumour_sizes,
        "lesion_detection": results.lesion_detection,
        "undefined_values": results.undefined,
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


def console_summary(results: BenchmarkResults, compression: pd.DataFrame, output: Path) -> str:
    return "\n".join(
        [*results.protocol_notes, results_table(results), frame_to_markdown(compression), f"Everything is in {output}"]
    )
