"""study.md: the grid, the machine, the versions, the wall time of every training and the results."""

from __future__ import annotations

import platform
from pathlib import Path

import pandas as pd

from nnunetv2_hlfd.study.grid import StudySettings, Training, study_runs
from nnunetv2_hlfd.study.progress import Record
from nnunetv2_hlfd.utilities.cores import cores_available
from nnunetv2_hlfd.utilities.markdown import markdown_table
from nnunetv2_hlfd.utilities.provenance import cpu_model, software_versions, source_commit


def results_table(benchmark_folder: Path) -> pd.DataFrame | None:
    """Per model: DSC per class, parameters and inference time per case, from the benchmark's compression.csv."""
    table_file = benchmark_folder / "compression.csv"
    if not table_file.is_file():
        return None
    table = pd.read_csv(table_file)
    dsc = [c for c in table.columns if c.startswith("dsc_")]
    latency = [c for c in table.columns if c.startswith("volume_latency_s_")]
    columns = ["trainer", *dsc, *[c for c in ("parameters", "macs_per_patch") if c in table.columns], *latency]
    return table[columns]


def dsc_convention(benchmark_folder: Path) -> str:
    """What the DSC columns of compression.csv average, with n per class."""
    table = pd.read_csv(benchmark_folder / "compression.csv")
    counts = [
        f"{c.removeprefix('n_cases_dsc_')} n = {int(table[c].iloc[0])}" for c in table if c.startswith("n_cases_dsc_")
    ]
    return (
        "mean over the validation cases common to every model, a case whose prediction and ground truth are both "
        "empty counting as 1" + (f"; {', '.join(counts)}" if counts else "")
    )


def format_table(table: pd.DataFrame) -> str:
    """A Markdown table; DSC to three places, times to two, counts as integers."""

    def cell(column: str, value) -> str:
        if isinstance(value, str):
            return value
        if pd.isna(value):
            return "n/a"
        if column.startswith("dsc_"):
            return f"{value:.3f}"
        if column.startswith("volume_latency_s_"):
            return f"{value:.2f}"
        return f"{int(value):,}"

    header = [_column_title(c) for c in table.columns]
    return markdown_table(header, [[cell(c, row[c]) for c in table.columns] for _, row in table.iterrows()])


def _column_title(column: str) -> str:
    if column.startswith("dsc_"):
        return f"DSC {column.removeprefix('dsc_')}"
    if column.startswith("volume_latency_s_"):
        return f"s per case ({column.removeprefix('volume_latency_s_')})"
    return {"macs_per_patch": "MACs per patch"}.get(column, column)


def machine() -> str:
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return (
        f"{platform.system()} {platform.release()}, {cpu_model()}, {cores_available()} cores available, "
        f"GPUs: {', '.join(gpus) or 'none'}"
    )


def write_study_md(
    path: Path,
    settings: StudySettings,
    dataset: str,
    records: dict[str, Record],
    benchmark_folder: Path | None,
    total_wall_s: float,
    command: str | None,
    runs_text: str | None = None,
) -> None:
    def length(epochs: int | None, iterations: int | None) -> str:
        return f"{epochs} epochs x {iterations} iterations" if epochs is not None else "the trainer's own"

    lengths = (
        f"teacher: {length(*settings.teacher_length)} ({settings.teacher_run_name()}); students: "
        f"{length(settings.epochs, settings.iterations)} ({settings.run_name('<student>')})"
    )
    repeats = (
        f"{len(settings.seeds)} per student and fold, seeds {' '.join(map(str, settings.seeds))} (the teacher: "
        + ("unseeded, at its own length" if settings.teacher_seed is None else f"seed {settings.teacher_seed}")
        + ")"
        if settings.seeds
        else "1 per student and fold, unseeded"
    )
    grid = [
        ("dataset", dataset),
        ("configuration", settings.configuration),
        ("plans", settings.plans),
        ("teacher", settings.teacher),
        ("students", ", ".join(settings.students)),
        ("folds", " ".join(map(str, settings.folds))),
        ("training length", lengths),
        ("repeats", repeats),
        ("device", settings.device),
        ("backend", settings.cluster or f"{settings.workers} local worker(s)"),
        ("protocol", settings.protocol),
    ]
    lines = [
        f"# Study: {dataset} {settings.configuration}",
        "",
        f"Command: `{command or 'nnunetv2_hlfd.study.runner.run_study() from Python'}`",
        "",
        "## Grid",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in grid],
        "",
        "## Machine and versions",
        "",
        f"- Machine: {machine()}",
        f"- Versions: {', '.join(f'{name} {version}' for name, version in software_versions().items())}",
        f"- Commit: {source_commit()}",
        f"- Wall time of this run: {total_wall_s / 60:.1f} min",
        "",
        "## Wall time per training (minutes)",
        "",
        _wall_time_table(records, settings),
        "",
    ]
    table = results_table(benchmark_folder) if benchmark_folder else None
    if table is not None:
        about = (
            f"Validation DSC per class ({dsc_convention(benchmark_folder)}), parameters and the median time to "
            "predict one validation case, from `nnunetv2_hlfd benchmark`. Confidence intervals, p-values against the "
            "student without distillation and the figures are in "
            f"[the benchmark's report]({benchmark_folder.name}/report.md)."
        )
        lines += ["## Results", "", about, "", format_table(table), ""]
    elif benchmark_folder:
        lines += ["## Results", "", f"See [the benchmark's report]({benchmark_folder.name}/report.md).", ""]
    if runs_text:
        lines += [runs_text]
    path.write_text("\n".join(lines))


def _wall_time_table(records: dict[str, Record], settings: StudySettings) -> str:
    def minutes(trainer: str, fold: int, seed: int | None) -> str:
        record = records.get(Training(trainer, fold, seed=seed).key)
        return "n/a" if record is None or record.wall_s is None else f"{record.wall_s / 60:.1f}"

    lines = [
        "| trainer | " + " | ".join(f"fold {f}" for f in settings.folds) + " |",
        "|---|" + "---|" * len(settings.folds),
    ]
    return "\n".join(
        lines
        + [
            f"| {settings.run_name(t, seed)} | " + " | ".join(minutes(t, f, seed) for f in settings.folds) + " |"
            for t, seed in study_runs(settings)
        ]
    )
