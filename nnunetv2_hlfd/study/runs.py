"""A study's runs and the statistics whose unit is the run: one training of one variant on one fold and seed.

A claim about a training method is a claim about trainings, so beside the benchmark's case-level tests this
module compares the students with the plain student run by run, from nnU-Net's own records of each run: the
final validation DSC per class (fold_X/validation/summary.json) and the learning curve (the training logs,
study/curves.py). Per student against the reference:

- onset counts (runs whose tumour pseudo-Dice reaches ONSET_THRESHOLD in some epoch), Fisher's exact test;
- final tumour DSC and tumour curve area, exact paired sign-flip permutation tests over the (fold, seed) pairs;
- the other classes' final DSC, the same test, two-sided.

Each distilled student is compared with the plain student of its own size (`Roles`, from the trainer classes).
Holm within pre-declared families: the primary family is the final tumour DSC of the primary students (HLFD at
each size); the secondary families are their tumour curve areas, their onset counts, the other students' final
tumour DSC, and every class's final DSC outside the tumour. Beside them: the smallest mean difference each
primary test detects with 80 % power, the share of the teacher-to-plain-student gap each student closes (with a
bootstrap interval over its pairs), and case-level, each validation case's DSC averaged over the repeats,
paired Wilcoxon over cases (descriptive).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import bootstrap, fisher_exact, permutation_test

from nnunetv2_hlfd.evaluation.paired_tests import holm_adjust, paired_wilcoxon
from nnunetv2_hlfd.evaluation.tumour import tumour_name
from nnunetv2_hlfd.study.curves import LearningCurve, read_learning_curve
from nnunetv2_hlfd.study.grid import PLAIN_STUDENT, StudySettings, fold_folder, study_graph
from nnunetv2_hlfd.utilities.problems import UserFacingError

__all__ = [
    "ONSET_THRESHOLD",
    "Roles",
    "Run",
    "RunComparison",
    "collect_runs",
    "compare_runs",
    "detectable_difference",
    "paired_permutation_p",
]

ONSET_THRESHOLD = 0.2  # tumour pseudo-Dice that counts as "started on the tumours"
PRIMARY_STUDENT = "nnUNetTrainerHLFD"
EXACT_PERMUTATION_PAIRS = 20  # up to 2^20 sign patterns enumerated; beyond, a seeded Monte Carlo sample
MONTE_CARLO_PATTERNS = 200_000
POWER = 0.8  # of the detectable difference
POWER_SIMULATIONS = 2_000


@dataclass(frozen=True)
class Run:
    variant: str  # the trainer as the study names it (nnUNetTrainerHLFD)
    fold: int
    seed: int | None
    final_dsc: dict[str, float]  # class name -> nnU-Net's mean validation Dice
    case_dsc: dict[str, dict[str, float]]  # case -> class name -> Dice
    curve: LearningCurve | None


@dataclass(frozen=True)
class Test:
    family: str
    student: str
    endpoint: str
    alternative: str
    n: int  # runs per arm (onset) or pairs
    student_value: str
    reference_value: str
    p_value: float
    p_holm: float = math.nan


@dataclass(frozen=True)
class Roles:
    """Who is compared with whom: each distilled student's reference (the plain student of its size) and the
    primary students (HLFD at each size), whose final tumour DSC is the primary family."""

    references: dict[str, str]
    primary: tuple[str, ...]

    @classmethod
    def by_name(cls, settings: StudySettings) -> Roles:
        """Without the trainer classes: every student against the plain student (or the first student)."""
        reference = PLAIN_STUDENT if PLAIN_STUDENT in settings.students else settings.students[0]
        students = [s for s in settings.students if s != reference]
        primary = PRIMARY_STUDENT if PRIMARY_STUDENT in students else (students[0] if students else None)
        return cls({s: reference for s in students}, (primary,) if primary else ())


@dataclass(frozen=True)
class RunComparison:
    references: dict[str, str]
    tumour: str
    tests: list[Test] = field(default_factory=list)
    case_level: list[dict] = field(default_factory=list)
    detectable: list[dict] = field(default_factory=list)  # per primary student: pairs, spread, difference
    gap_shares: list[dict] = field(default_factory=list)  # per student: share of the teacher gap, interval


def foreground_classes(dataset_json: dict) -> list[str]:
    """Foreground label names in label order: the order of nnU-Net's pseudo-Dice list."""
    labels = {name: value for name, value in dataset_json["labels"].items() if name != "background"}
    return sorted(labels, key=lambda name: labels[name] if isinstance(labels[name], int) else max(labels[name]))


def tumour_class(classes: list[str]) -> str:
    """The class named tumor or tumour, by the benchmark's rule (`evaluation.tumour.tumour_name`); a dataset
    without one is refused, since the study's primary endpoint is the tumour's DSC."""
    tumour = tumour_name(classes)
    if tumour is None:
        raise UserFacingError(
            f"no class of the dataset ({', '.join(classes)}) is named tumor or tumour, and the study's endpoints "
            "are the tumour's: name the tumour class tumor in dataset.json's labels"
        )
    return tumour


def read_summary(folder: Path, classes: list[str], label_values: dict[str, str]) -> tuple[dict, dict]:
    """nnU-Net's validation summary of a fold: mean Dice per class and Dice per case and class."""
    path = folder / "validation" / "summary.json"
    try:
        summary = json.loads(path.read_text())
        final = {name: float(summary["mean"][label_values[name]]["Dice"]) for name in classes}
        per_case = {}
        for entry in summary["metric_per_case"]:
            case = Path(entry["reference_file"]).name.split(".")[0]
            per_case[case] = {name: float(entry["metrics"][label_values[name]]["Dice"]) for name in classes}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserFacingError(
            f"{path} is not an nnU-Net validation summary ({error!r}); rerun nnUNetv2_train --val"
        ) from None
    return final, per_case


def collect_runs(results: Path, settings: StudySettings, dataset_json: dict) -> list[Run]:
    """Every finished run of the study's grid, teacher included; unfinished runs are left out."""
    classes = foreground_classes(dataset_json)
    label_values = {name: str(dataset_json["labels"][name]) for name in classes}
    runs = []
    for training in study_graph(settings):
        folder = fold_folder(results, settings, training.trainer, training.fold, training.seed)
        if not (folder / "validation" / "summary.json").is_file():
            continue
        try:
            final, per_case = read_summary(folder, classes, label_values)
        except ValueError:  # left out of the run-level record, as an unfinished run is
            continue
        try:
            curve = read_learning_curve(folder)
        except ValueError:
            curve = None
        runs.append(Run(training.trainer, training.fold, training.seed, final, per_case, curve))
    return runs


def paired_permutation_p(differences, alternative: str = "greater") -> float:
    """Sign-flip permutation test of paired differences (mean zero under the null); NaN pairs left out.

    alternative "greater": the share of sign patterns whose mean is at least the observed one; "two-sided": twice
    the smaller one-sided share (the sign-flip null is symmetric, so: of an absolute mean at least the observed
    one). Exact up to EXACT_PERMUTATION_PAIRS pairs, beyond them a seeded Monte Carlo sample. n = 0 gives p = 1.
    """
    d = np.asarray(differences, dtype=float)
    return float(sign_flip_p(d[~np.isnan(d)], alternative))


def sign_flip_p(differences: np.ndarray, alternative: str = "greater") -> np.ndarray | float:
    """SciPy's paired permutation test (one sample, permutation_type "samples": every sign pattern) of the
    differences along the last axis; a 2-d array gives one p per row, all rows at once."""
    if alternative not in ("greater", "two-sided"):
        raise ValueError(f"alternative must be 'greater' or 'two-sided', got {alternative!r}")
    n = differences.shape[-1]
    if n < 2:  # SciPy needs two pairs; one pair's patterns are +d and -d, none leaves only the pattern 0
        one_sided = np.where(differences[..., 0] > 0, 0.5, 1.0) if n else np.ones(differences.shape[:-1])
        return one_sided if alternative == "greater" else np.ones_like(one_sided)
    result = permutation_test(
        (differences,),
        np.mean,  # SciPy passes axis=-1: vectorised over the sign patterns
        permutation_type="samples",
        vectorized=True,
        alternative=alternative,
        # n_resamples at least 2^n makes SciPy enumerate every pattern (exact)
        n_resamples=2**n if n <= EXACT_PERMUTATION_PAIRS else MONTE_CARLO_PATTERNS,
        axis=-1,
        batch=max(1, 2**22 // differences.size),  # about 32 MiB of sign patterns at a time
        rng=0,
    )
    return result.pvalue


def _paired(runs: list[Run], student: str, reference: str, value) -> list[float]:
    by_key = {(r.variant, r.fold, r.seed): r for r in runs}
    pairs = []
    for run in runs:
        if run.variant == student and (partner := by_key.get((reference, run.fold, run.seed))):
            pairs.append(value(run) - value(partner))
    return pairs


def compare_runs(
    runs: list[Run],
    settings: StudySettings,
    classes: list[str],
    roles: Roles | None = None,
    teacher_runs: list[Run] = (),
    alpha: float = 0.05,
) -> RunComparison:
    """The students' `runs` against their references', by the families of the module's docstring;
    `teacher_runs` (one per fold) for the share of the gap each student closes."""
    roles = roles or Roles.by_name(settings)
    tumour = tumour_class(classes)
    index = classes.index(tumour)
    tests = []

    def arm(name: str) -> list[Run]:
        return [r for r in runs if r.variant == name]

    def final_of(class_name: str):
        return lambda r: r.final_dsc[class_name]

    def area(r: Run) -> float:
        return r.curve.area(index) if r.curve else math.nan

    for student, reference in roles.references.items():
        arms = (arm(student), arm(reference))
        primary = student in roles.primary
        family = "primary" if primary else f"secondary: final {tumour} DSC"
        final = _paired(runs, student, reference, final_of(tumour))
        tests.append(_mean_test(family, student, f"final {tumour} DSC", final, arms, final_of(tumour)))
        if primary:
            diffs = _paired(runs, student, reference, area)
            tests.append(
                _mean_test(f"secondary: {tumour} curve area", student, f"{tumour} curve area", diffs, arms, area)
            )
            tests.append(_onset_test(student, *arms, tumour, index))
        for other in (c for c in classes if c != tumour):
            diffs = _paired(runs, student, reference, final_of(other))
            tests.append(
                _mean_test(
                    f"secondary: final {other} DSC",
                    student,
                    f"final {other} DSC",
                    diffs,
                    arms,
                    final_of(other),
                    "two-sided",
                )
            )
    tests = _holm_by_family(tests)
    first_step = alpha / max(1, sum(t.family == "primary" for t in tests))  # Holm's smallest level
    detectable = [
        {"student": s, **detectable_difference(_paired(runs, s, roles.references[s], final_of(tumour)), first_step)}
        for s in roles.primary
        if s in roles.references
    ]
    shares = [
        {"student": s, **gap_share(runs, teacher_runs, s, reference, final_of(tumour))}
        for s, reference in roles.references.items()
    ]
    students = list(roles.references)
    return RunComparison(
        roles.references,
        tumour,
        tests,
        _case_level(runs, students, roles.references, classes),
        detectable,
        [row for row in shares if row["pairs"]],
    )


def _onset_test(student: str, student_runs: list[Run], reference_runs: list[Run], tumour: str, index: int) -> Test:
    started = [
        sum(r.curve is not None and r.curve.onset(index, ONSET_THRESHOLD) is not None for r in arm)
        for arm in (student_runs, reference_runs)
    ]
    counts = [len(student_runs), len(reference_runs)]
    table = [[started[0], counts[0] - started[0]], [started[1], counts[1] - started[1]]]
    p = fisher_exact(table, alternative="greater").pvalue if min(counts) else math.nan
    return Test(
        "secondary: onset",
        student,
        f"onset ({tumour} pseudo-Dice >= {ONSET_THRESHOLD})",
        "greater",
        min(counts),
        f"{started[0]}/{counts[0]}",
        f"{started[1]}/{counts[1]}",
        float(p),
    )


def detectable_difference(differences, alpha: float, power: float = POWER, seed: int = 0) -> dict:
    """The smallest mean difference the one-sided paired permutation test at `alpha` detects with `power`, for
    pair differences normal with the spread (SD) of the observed ones; a design that cannot reject at all
    (too few pairs) or has no spread gives NaN."""
    d = np.asarray([v for v in differences if not math.isnan(v)], dtype=float)
    n = d.size
    spread = float(np.std(d, ddof=1)) if n > 1 else math.nan
    result = {"pairs": n, "sd": spread, "difference": math.nan, "smallest_p": 0.5**n if n else math.nan}
    if n < 2 or not spread > 0 or 0.5**n > alpha:
        return result
    noise = np.random.default_rng(seed).standard_normal((POWER_SIMULATIONS, n))

    def detected(effect: float) -> float:
        return float(np.mean(sign_flip_p(effect + spread * noise) <= alpha))  # every simulation in one call

    low, high = 0.0, spread
    while detected(high) < power:
        low, high = high, 2 * high
    for _ in range(12):  # bisection to 1/4096 of the bracket
        middle = (low + high) / 2
        low, high = (middle, high) if detected(middle) < power else (low, middle)
    return result | {"difference": high}


def gap_share(runs: list[Run], teacher_runs: list[Run], student: str, reference: str, value) -> dict:
    """The share of the teacher-to-reference gap the student closes, (student - reference) / (teacher -
    reference) over the student's pairs (the teacher of each pair's fold), with a 95 % percentile bootstrap
    interval over the pairs."""
    teachers = {r.fold: value(r) for r in teacher_runs}
    by_key = {(r.variant, r.fold, r.seed): r for r in runs}
    rows = [
        (value(r), value(partner), teachers[r.fold])
        for r in runs
        if r.variant == student and r.fold in teachers and (partner := by_key.get((reference, r.fold, r.seed)))
    ]
    result = {"pairs": len(rows), "share": math.nan, "low": math.nan, "high": math.nan}
    if not rows:
        return result
    own, plain, teacher = (np.array(column, dtype=float) for column in zip(*rows))

    def share(own, plain, teacher, axis=-1):
        gap = np.mean(teacher, axis=axis) - np.mean(plain, axis=axis)
        with np.errstate(all="ignore"):
            return np.where(gap > 0, (np.mean(own, axis=axis) - np.mean(plain, axis=axis)) / gap, np.nan)

    result["share"] = float(share(own, plain, teacher))
    if len(rows) > 1 and np.ptp(own - plain) > 0:
        interval = bootstrap(
            (own, plain, teacher), share, paired=True, vectorized=True, method="percentile", rng=0, n_resamples=4999
        ).confidence_interval
        result |= {"low": float(interval.low), "high": float(interval.high)}
    return result


def _mean_test(family, student, endpoint, differences, arms, value, alternative="greater") -> Test:
    """The paired test of `differences`, beside each arm's mean of `value` over its runs (paired or not)."""

    def mean(values):
        values = [v for v in values if not math.isnan(v)]
        return f"{np.mean(values):.3f}" if values else "n/a"

    return Test(
        family,
        student,
        endpoint,
        alternative,
        len(differences),
        mean(map(value, arms[0])),
        mean(map(value, arms[1])),
        # without a pair there is no test (n/a), not evidence of no difference
        paired_permutation_p(differences, alternative) if differences else math.nan,
    )


def _holm_by_family(tests: list[Test]) -> list[Test]:
    adjusted = {}
    for family in dict.fromkeys(t.family for t in tests):
        members = [i for i, t in enumerate(tests) if t.family == family]
        for i, p in zip(members, holm_adjust([tests[i].p_value for i in members])):
            adjusted[i] = float(p)
    return [Test(**{**t.__dict__, "p_holm": adjusted[i]}) for i, t in enumerate(tests)]


def _case_level(runs: list[Run], students: list[str], references: dict[str, str], classes: list[str]) -> list[dict]:
    """Each case's DSC averaged over the repeats both variants ran (the same seeds on each side), then paired
    over cases (Wilcoxon, two-sided)."""

    def case_means(variant: str, seeds: set) -> dict[tuple[int, str], dict[str, float]]:
        sums: dict[tuple[int, str], list[dict[str, float]]] = {}
        for run in (r for r in runs if r.variant == variant and (r.fold, r.seed) in seeds):
            for case, values in run.case_dsc.items():
                sums.setdefault((run.fold, case), []).append(values)
        return {key: {c: float(np.nanmean([v[c] for v in vs])) for c in classes} for key, vs in sums.items()}

    def trainings(variant: str) -> set:
        return {(r.fold, r.seed) for r in runs if r.variant == variant}

    rows = []
    for student in students:
        reference = references[student]
        shared = trainings(student) & trainings(reference)
        student_means, reference_means = case_means(student, shared), case_means(reference, shared)
        common = sorted(set(student_means) & set(reference_means))
        for class_name in classes if common else ():
            diffs = [student_means[k][class_name] - reference_means[k][class_name] for k in common]
            test = paired_wilcoxon(diffs)
            rows.append(
                {
                    "student": student,
                    "reference": reference,
                    "class": class_name,
                    "trainings": len(shared),
                    "cases": test.n_pairs,
                    "mean_difference": test.mean_difference,
                    "p_value": test.p_value,
                }
            )
    return rows
