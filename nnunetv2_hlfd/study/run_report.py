"""What a study writes about its runs: runs.csv, runs.md (run-level and case-level statistics) and the
learning-curve figure (median and range of the pseudo-Dice over the runs of each variant)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from matplotlib import style
from matplotlib.figure import Figure

from nnunetv2_hlfd.evaluation.tables import format_p_value
from nnunetv2_hlfd.study.grid import StudySettings
from nnunetv2_hlfd.study.runs import ONSET_THRESHOLD, POWER, Roles, Run, RunComparison
from nnunetv2_hlfd.study.teacher_check import RISING_EPOCHS, RISING_MARGIN, TeacherCheck, check_teacher, still_rising
from nnunetv2_hlfd.utilities.markdown import markdown_table

DPI = 120
NNUNET_ITERATIONS_PER_EPOCH = 250  # nnUNetTrainer's own, for a study at the trainers' own length


def iterations_per_epoch(settings: StudySettings, variant: str | None = None) -> int:
    """Iterations per epoch of `variant` (the teacher may have its own schedule), else of the students."""
    iterations = settings.teacher_length[1] if variant == settings.teacher else settings.iterations
    return iterations or NNUNET_ITERATIONS_PER_EPOCH


def short_name(variant: str) -> str:
    return variant.removeprefix("nnUNetTrainer").removeprefix("_") or "teacher"


def write_runs_csv(path: Path, runs: list[Run], classes: list[str], tumour: str) -> Path:
    index = classes.index(tumour)
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            ["variant", "fold", "seed", *[f"final_dsc_{c}" for c in classes], "onset_epoch", f"{tumour}_curve_area"]
            + [f"{tumour}_still_rising"]
        )
        for run in runs:
            onset = run.curve.onset(index, ONSET_THRESHOLD) if run.curve else None
            area = run.curve.area(index) if run.curve else math.nan
            rising = still_rising(run.curve, index)
            writer.writerow(
                [run.variant, run.fold, "" if run.seed is None else run.seed]
                + [f"{run.final_dsc[c]:.4f}" for c in classes]
                + ["" if onset is None else onset, f"{area:.4f}", "" if rising is None else int(rising)]
            )
    return path


def learning_curve_figure(
    path: Path, runs: list[Run], classes: list[str], tumour: str, settings: StudySettings
) -> Path | None:
    """`draw_learning_curves`' figure written to `path`; None (and no file) when no run has a curve."""
    figure = draw_learning_curves(runs, classes, tumour, settings)
    if figure is None:
        return None
    with style.context("default"):
        figure.savefig(path, dpi=DPI)
    return path


def draw_learning_curves(runs: list[Run], classes: list[str], tumour: str, settings: StudySettings) -> Figure | None:
    """One panel per class (the tumour first): pseudo-Dice against iteration, median line and min-max band
    over each variant's runs; None when no run has a curve."""
    with_curves = [r for r in runs if r.curve is not None]
    if not with_curves:
        return None
    ordered = [tumour] + [c for c in classes if c != tumour]
    variants = list(dict.fromkeys(r.variant for r in with_curves))
    with style.context("default"):
        figure = Figure(figsize=(6.0 * len(ordered), 4.6), layout="constrained")
        axes = figure.subplots(1, len(ordered), squeeze=False)[0]
        for axis, class_name in zip(axes, ordered):
            index = classes.index(class_name)
            for colour, variant in zip(_colours(len(variants)), variants):
                curves = [r.curve.class_curve(index) for r in with_curves if r.variant == variant]
                epochs = min(len(c) for c in curves)
                values = np.array([c[:epochs] for c in curves], dtype=float)
                x = (np.arange(epochs) + 1) * iterations_per_epoch(settings, variant)
                label = f"{short_name(variant)} (n = {len(curves)} run{'s' if len(curves) > 1 else ''})"
                with np.errstate(all="ignore"):
                    axis.plot(x, np.nanmedian(values, axis=0), color=colour, label=label, linewidth=1.8)
                    axis.fill_between(x, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color=colour, alpha=0.15)
            axis.set_xlabel("training iteration")
            axis.set_ylabel(f"{class_name} pseudo-Dice (validation patches)")
            axis.set_ylim(-0.02, 1.02)
            axis.grid(alpha=0.3)
            axis.set_title(f"{class_name}: median and range over runs")
        axes[0].axhline(ONSET_THRESHOLD, color="grey", linestyle=":", linewidth=1, label="onset threshold")
        axes[0].legend(loc="upper left", fontsize="small")
        figure.suptitle("nnU-Net's per-epoch pseudo-Dice, per variant (line: median, band: min to max)")
    return figure


def _colours(n: int) -> list:
    from matplotlib import colormaps

    return [colormaps["tab10"](i % 10) for i in range(n)]


def runs_markdown(runs: list[Run], comparison: RunComparison, classes: list[str], settings: StudySettings) -> str:
    tumour, index = comparison.tumour, classes.index(comparison.tumour)
    per_epoch = iterations_per_epoch(settings)
    lines = [
        "## Runs",
        "",
        "One row per training (variant, fold, seed): nnU-Net's final validation DSC (validation/summary.json, "
        f"mean over the fold's cases), the onset (first epoch whose {tumour} pseudo-Dice is at least "
        f"{ONSET_THRESHOLD}; epochs of {per_epoch} iterations) and the {tumour} curve area (mean pseudo-Dice "
        "over the epochs). Every value is in runs.csv.",
        "",
    ]
    header = ["variant", "fold", "seed", *[f"DSC {c}" for c in classes], "onset (epoch)", f"{tumour} curve area"]
    header.append(f"{tumour} still rising")
    rows = []
    for run in runs:
        onset = run.curve.onset(index, ONSET_THRESHOLD) if run.curve else None
        rising = still_rising(run.curve, index)
        rows.append(
            [short_name(run.variant), run.fold, "-" if run.seed is None else run.seed]
            + [f"{run.final_dsc[c]:.3f}" for c in classes]
            + ["none" if onset is None else onset, f"{run.curve.area(index):.3f}" if run.curve else "n/a"]
            + [{True: "yes", False: "no", None: "n/a"}[rising]]
        )
    lines += [markdown_table(header, rows), ""]
    references = ", ".join(f"{short_name(s)} against {short_name(r)}" for s, r in comparison.references.items())
    lines += [
        "## Run-level statistics",
        "",
        f"Each student against the same student network without distillation ({references}), the unit being the "
        "run: onset counts with Fisher's exact test; final DSC and curve area with an exact paired sign-flip "
        f"permutation test over the (fold, seed) pairs. One-sided (student better) for the {tumour} endpoints, "
        "two-sided for the others. Holm within each family.",
        "",
    ]
    header = ["family", "student", "endpoint", "alternative", "n", "student", "reference", "p", "p (Holm)"]
    rows = [
        [t.family, short_name(t.student), t.endpoint, t.alternative, t.n, t.student_value, t.reference_value]
        + [format_p_value(t.p_value), format_p_value(t.p_holm)]
        for t in comparison.tests
    ]
    lines += [markdown_table(header, rows), ""]
    lines += _power_and_gap_markdown(comparison, tumour)
    lines += [
        "## Case-level statistics (descriptive)",
        "",
        "Each validation case's DSC averaged over the repeats both variants ran (the same folds and seeds), "
        "paired with the reference's, Wilcoxon signed-rank over the cases (two-sided, no Holm adjustment). The cases "
        "come from the trainings counted beside them: a case-level p-value says how consistently the cases "
        "differ, not how a new training of the method would do.",
        "",
    ]
    header = ["student", "class", "trainings per variant", "cases", "mean difference", "p"]
    rows = [
        [short_name(r["student"]), r["class"], r["trainings"], r["cases"], f"{r['mean_difference']:+.3f}"]
        + [format_p_value(r["p_value"])]
        for r in comparison.case_level
    ]
    lines += [markdown_table(header, rows), ""]
    return "\n".join(lines)


def _power_and_gap_markdown(comparison: RunComparison, tumour: str) -> list[str]:
    lines = []
    if comparison.detectable:
        lines += [
            "What the primary tests could have seen: the smallest mean difference in final "
            f"{tumour} DSC each detects with {POWER:.0%} power at Holm's first level, for pair differences normal "
            "with the spread (SD) of the observed ones; n/a where the pairs are too few to reject at all.",
            "",
            markdown_table(
                ["student", "pairs", "smallest possible p", "SD of the differences", "detectable difference"],
                [
                    [
                        short_name(d["student"]),
                        d["pairs"],
                        format_p_value(d["smallest_p"]),
                        _value(d["sd"]),
                        _value(d["difference"]),
                    ]
                    for d in comparison.detectable
                ],
            ),
            "",
        ]
    if comparison.gap_shares:
        lines += [
            f"Share of the teacher-to-reference gap in final {tumour} DSC each student closes, (student - "
            "reference) / (teacher - reference) over its pairs, 95 % percentile bootstrap interval over the pairs "
            "(n/a where the teacher is not above the reference or the pairs do not vary).",
            "",
            markdown_table(
                ["student", "pairs", "share of the gap", "95 % interval"],
                [
                    [
                        short_name(g["student"]),
                        g["pairs"],
                        _value(g["share"]),
                        f"{_value(g['low'])} to {_value(g['high'])}",
                    ]
                    for g in comparison.gap_shares
                ],
            ),
            "",
        ]
    return lines


def _value(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def write_run_evidence(
    output: Path, settings: StudySettings, results: Path, dataset_json: dict, roles: Roles | None = None
) -> tuple[str | None, list[str]]:
    """runs.csv, learning_curves.png and the runs' Markdown (for study.md; None without runs), with the
    teacher check's warnings."""
    from nnunetv2_hlfd.study.runs import collect_runs, compare_runs, foreground_classes

    classes = foreground_classes(dataset_json)
    runs = collect_runs(results, settings, dataset_json)
    if not runs:
        return None, []
    teachers = [r for r in runs if r.variant == settings.teacher]
    students = [r for r in runs if r.variant != settings.teacher]
    comparison = compare_runs(students, settings, classes, roles, teachers)
    check = check_teacher(teachers, classes, dataset_json)
    write_runs_csv(output / "runs.csv", runs, classes, comparison.tumour)
    figure = learning_curve_figure(output / "learning_curves.png", runs, classes, comparison.tumour, settings)
    text = teacher_markdown(check, settings) + runs_markdown(runs, comparison, classes, settings)
    if figure is not None:
        text += f"\n![Learning curves per variant]({figure.name})\n"
    return text, check.warnings


def teacher_markdown(check: TeacherCheck, settings: StudySettings) -> str:
    lines = [
        "## Is the teacher worth distilling?",
        "",
        f"The teacher ({settings.teacher_run_name()}) per fold and class: nnU-Net's final validation DSC, the best "
        "Dice of a plain intensity window where the dataset records one (the converter's plain-threshold check), "
        f"and whether its curve was still rising at the end (mean pseudo-Dice of its last {RISING_EPOCHS} epochs "
        f"at least {RISING_MARGIN} above the {RISING_EPOCHS} before).",
        "",
    ]
    if not check.rows:
        return "\n".join(lines + ["No teacher run has finished.", "", ""])
    rows = [
        [
            r["fold"],
            r["class"],
            f"{r['final_dsc']:.3f}",
            "n/a" if r["window_dice"] is None else f"{r['window_dice']:.3f}",
            {True: "yes", False: "no", None: "n/a (too short)"}[r["rising"]],
        ]
        for r in check.rows
    ]
    lines += [markdown_table(["fold", "class", "final DSC", "window Dice", "still rising"], rows), ""]
    lines += [f"- **Warning**: {w}" for w in check.warnings] or ["No warning: the teacher is worth distilling."]
    return "\n".join(lines + ["", ""])
