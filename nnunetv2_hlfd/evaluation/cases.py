"""Scoring of the benchmark's validation cases: the case evaluator of the benchmark's settings and dataset
(`case_evaluator`: classes, surface Dice tolerances, the paper protocol's slice axis and probabilities), one job
per case (its ground truth and every model's prediction of it), every file of every case checked before any is
scored (`check_cases`: all problems at once), then scored in parallel (`evaluate_cases`) into the per-case table.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from nnunetv2.evaluation.evaluate_predictions import region_or_label_to_mask

from nnunetv2_hlfd.evaluation.label_maps import (
    Segmentation,
    grid_problems,
    read_segmentation,
    reference_values,
    value_problems,
)
from nnunetv2_hlfd.evaluation.metrics import LabelOrRegion, evaluate_case
from nnunetv2_hlfd.evaluation.model_folders import (
    BenchmarkDataset,
    BenchmarkInputError,
    FoldPredictions,
    training_command,
)
from nnunetv2_hlfd.evaluation.paper_metrics import (
    PAPER_PROTOCOL_THRESHOLD,
    paper_protocol_scores,
    paper_protocol_scores_from_probabilities,
    paper_slice_axis,
)
from nnunetv2_hlfd.evaluation.per_case import per_case_rows, per_case_table
from nnunetv2_hlfd.evaluation.protocol import PROTOCOLS
from nnunetv2_hlfd.evaluation.settings import BenchmarkSettings
from nnunetv2_hlfd.utilities.cores import cores_available
from nnunetv2_hlfd.utilities.library_noise import quiet_library_noise
from nnunetv2_hlfd.utilities.progress_bar import progress_bar

REFERENCE_FIX = "preprocess the dataset again (nnUNetv2_plan_and_preprocess), which copies it"
WRONG_REFERENCE_FIX = (
    "it is not a label map of this dataset: correct the label in nnUNet_raw's labelsTr (or dataset.json's labels) "
    "and preprocess again"
)
PREDICTION_FIX = "rerun nnU-Net's validation of this fold (nnUNetv2_train ... --val)"
OTHER_GRID_FIX = "it was predicted from other images, or the dataset was converted again since: " + PREDICTION_FIX
OTHER_LABELS_FIX = "it was predicted with another label set: rerun validation with a model trained on this dataset"


@dataclass(frozen=True)
class CaseJob:
    """One validation case: its ground truth and every model's prediction of it."""

    fold: int
    case: str
    reference: Path
    # (model label, prediction file, its probabilities file or None: scored from the prediction file)
    predictions: tuple[tuple[str, Path, Path | None], ...]


@dataclass(frozen=True)
class CaseEvaluator:
    """Scores one `CaseJob`; a plain, picklable object, so worker processes can run it."""

    reader: object  # nnU-Net's image reader-writer of the dataset
    classes: tuple[LabelOrRegion, ...]
    class_names: dict
    allowed_labels: tuple[int, ...]
    ignore_label: int | None
    protocol: str
    tumour: LabelOrRegion | None
    tolerance_mm: float | dict  # surface Dice: one for all classes, or {label or region: mm}
    convention: str
    lesion_iou_threshold: float | None
    tumour_channel: int | None = None  # of the tumour in nnU-Net's saved probabilities
    slice_axis: int | None = None  # paper protocol: the array axis of the tumour slices
    dataset_name: str = "the dataset"  # for the problems' messages

    def problems(self, job: CaseJob) -> list[str]:
        """Every problem with the case's files: the ground truth and each prediction cannot be read or hold a
        value that is not a label of the dataset (the ground truth may hold its ignore label), or a prediction
        lies on another grid than its ground truth."""
        allowed = reference_values(self.allowed_labels, self.ignore_label)
        reference, found = self.read_and_check(
            job.reference, allowed, "the ground truth", REFERENCE_FIX, WRONG_REFERENCE_FIX
        )
        for _, path, _ in job.predictions:
            prediction, problems = self.read_and_check(
                path, self.allowed_labels, "the prediction", PREDICTION_FIX, OTHER_LABELS_FIX
            )
            found += problems
            if prediction is not None and reference is not None:
                against = f"the ground truth of case {job.case}"
                found += grid_problems(prediction, reference, path, "the prediction", against, OTHER_GRID_FIX)
        return found

    def read_and_check(
        self, path: Path, allowed: Sequence[int], what: str, unreadable_fix: str, values_fix: str
    ) -> tuple[Segmentation | None, list[str]]:
        """The label map (None where it cannot be read) and its problems: unreadable, or values not allowed."""
        try:
            segmentation = read_segmentation(path, self.reader, unreadable_fix)
        except BenchmarkInputError as error:
            return None, error.problems
        return segmentation, value_problems(segmentation.array, allowed, path, what, self.dataset_name, values_fix)

    def __call__(self, job: CaseJob) -> list[dict]:
        """The per-case rows of every model's prediction of the case (its files checked by `problems` first)."""
        reference = read_segmentation(job.reference, self.reader, REFERENCE_FIX)
        rows = []
        for label, path, probabilities in job.predictions:
            prediction = read_segmentation(path, self.reader, PREDICTION_FIX)
            scores = self.scores(prediction.array, reference.array, reference.spacing, probabilities)
            spacing = "x".join(f"{s:.4g}" for s in reference.spacing)  # for the dataset description
            rows += [
                row | {"spacing_mm": spacing}
                for row in per_case_rows(label, job.fold, job.case, scores, self.class_names)
            ]
        return rows

    def scores(self, prediction: np.ndarray, reference: np.ndarray, spacing, probabilities: Path | None = None) -> dict:
        ignored = self.ignored_voxels(reference)
        if ignored is not None:
            prediction, reference = np.where(ignored, 0, prediction), np.where(ignored, 0, reference)
        if PROTOCOLS[self.protocol].tumour_only:
            return {self.tumour: self.paper_scores(prediction, reference, probabilities, ignored)}
        return evaluate_case(
            prediction,
            reference,
            spacing,
            self.classes,
            self.tolerance_mm,
            convention=self.convention,
            lesion_iou_threshold=self.lesion_iou_threshold,
        )

    def ignored_voxels(self, reference: np.ndarray) -> np.ndarray | None:
        """Unannotated voxels (the ignore label) count as background in both, so, as in nnU-Net's
        own validation, they add neither false positives nor false negatives to any class."""
        return None if self.ignore_label is None else reference == self.ignore_label

    def paper_scores(
        self, prediction: np.ndarray, reference: np.ndarray, probabilities: Path | None, ignored: np.ndarray | None
    ) -> dict:
        """The reference code's tumour scores: of the tumour probability > 0.4 where nnU-Net saved
        probabilities, else of the segmentation (its argmax)."""
        reference_tumour = region_or_label_to_mask(reference, self.tumour)
        if probabilities is None:
            scores = paper_protocol_scores(
                region_or_label_to_mask(prediction, self.tumour), reference_tumour, self.slice_axis
            )
            source = "segmentation"
        else:
            probability = self.tumour_probability(probabilities, reference.shape)
            if ignored is not None:
                probability = np.where(ignored, 0.0, probability)
            scores = paper_protocol_scores_from_probabilities(probability, reference_tumour, self.slice_axis)
            source = f"probability > {PAPER_PROTOCOL_THRESHOLD:g}"
        return {"dsc": scores.dsc, "rvd": scores.rvd, "n_tumour_slices": scores.n_slices, "tumour_source": source}

    def tumour_probability(self, path: Path, shape: tuple[int, ...]) -> np.ndarray:
        """The tumour channel of nnU-Net's `<case>.npz` (`probabilities`: one channel per label, or
        per region, on the grid of the exported segmentation)."""
        with np.load(path) as saved:
            probabilities = saved["probabilities"] if "probabilities" in saved.files else None
        if probabilities is None or probabilities.shape[1:] != shape or len(probabilities) <= self.tumour_channel:
            found = (
                "no array 'probabilities'" if probabilities is None else f"probabilities of shape {probabilities.shape}"
            )
            raise BenchmarkInputError(
                f"{path} holds {found}, but nnU-Net's export for this case has one channel per "
                f"class (the tumour is channel {self.tumour_channel}) on the ground truth's grid "
                f"{shape}; it is not this prediction's: delete it, or rerun validation with --npz"
            )
        return probabilities[self.tumour_channel]


# --- the evaluator of this benchmark's settings and dataset ------------------------------------------


def case_evaluator(
    dataset: BenchmarkDataset, settings: BenchmarkSettings, tumour: LabelOrRegion | None
) -> CaseEvaluator:
    manager = dataset.label_manager
    return CaseEvaluator(
        dataset.plans_manager.image_reader_writer_class(),
        tuple(dataset.classes()),
        dataset.class_names(),
        tuple(manager.all_labels),
        manager.ignore_label,
        settings.protocol,
        tumour,
        surface_dice_tolerances(dataset, settings),
        settings.empty_convention,
        settings.lesion_iou_threshold,
        probability_channel(dataset, tumour),
        paper_slice_axis_of(dataset),
        dataset.name,
    )


def surface_dice_tolerances(dataset: BenchmarkDataset, settings: BenchmarkSettings) -> float | dict:
    """--tolerance-mm, or with --class-tolerance-mm {label or region: mm}, --tolerance-mm for the others."""
    if not settings.class_tolerances_mm:
        return settings.tolerance_mm
    by_name = {name: region for region, name in dataset.class_names().items()}
    tolerances = {region: settings.tolerance_mm for region in by_name.values()}
    problems = []
    for entry in settings.class_tolerances_mm:
        name, _, millimetres = entry.partition("=")
        try:
            value = float(millimetres)
        except ValueError:
            value = math.nan
        if name not in by_name or not value >= 0:
            problems.append(
                f"--class-tolerance-mm {entry!r} is not CLASS=MM with a class of {dataset.name} "
                f"({', '.join(by_name)}) and a tolerance of at least 0 mm, e.g. {next(iter(by_name))}=1.0"
            )
        else:
            tolerances[by_name[name]] = value
    if problems:
        raise BenchmarkInputError(problems, headline="surface Dice tolerances:")
    return tolerances


def tolerance_note(dataset: BenchmarkDataset, settings: BenchmarkSettings) -> str:
    tolerances = surface_dice_tolerances(dataset, settings)
    if not isinstance(tolerances, dict):
        return f"Surface Dice tolerance: {tolerances:g} mm for every class."
    names = dataset.class_names()
    return (
        "Surface Dice tolerance: " + ", ".join(f"{names[region]} {mm:g} mm" for region, mm in tolerances.items()) + "."
    )


def paper_slice_axis_of(dataset: BenchmarkDataset) -> int:
    """The axis nnU-Net's 2d configuration of this dataset slices (its plans' transpose_forward[0])."""
    return paper_slice_axis(spacing=(), transpose_forward=dataset.plans_manager.transpose_forward)


def slice_axis_note(dataset: BenchmarkDataset, plans: str) -> str:
    axis = paper_slice_axis_of(dataset)
    return (
        f"Tumour slices: along array axis {axis} of the (z, y, x) arrays nnU-Net reads, the axis its 2d "
        f"configuration slices (transpose_forward[0] = {axis} in {plans})."
    )


def probability_channel(dataset: BenchmarkDataset, tumour: LabelOrRegion | None) -> int | None:
    """nnU-Net saves one probability channel per label (softmax), or per region (sigmoid)."""
    if tumour is None:
        return None
    manager = dataset.label_manager
    return list(manager.foreground_regions if manager.has_regions else manager.all_labels).index(tumour)


def folds_with_probabilities(
    predictions: Sequence[FoldPredictions], dataset: BenchmarkDataset, paper_masks: str = "auto"
) -> frozenset[tuple[str, int]]:
    """For the paper protocol: the (model, fold) pairs scored from their saved probabilities
    (`<case>.npz`, written by validation with --npz) cut at the reference code's 0.4; the others
    from their segmentations (nnU-Net's argmax). One rule for every model and fold, so that no
    comparison mixes them: `paper_masks` "probability" needs every folder's probabilities,
    "argmax" uses none, and "auto" takes probabilities where every folder has them, the argmax
    where none has, and refuses a mix, naming the folders that lack them."""
    if paper_masks == "argmax":
        print("Paper protocol: tumour masks are nnU-Net's segmentations (argmax), as --paper-masks argmax asks")
        return frozenset()
    lacking = [
        p
        for p in predictions
        if not all((p.model.validation_folder(p.fold) / f"{case}.npz").is_file() for case in p.expected)
    ]
    if not lacking:
        print(
            f"Paper protocol: tumour probability > {PAPER_PROTOCOL_THRESHOLD:g} from the saved probabilities "
            f"(<case>.npz) of every model and fold, as the reference code"
        )
        return frozenset((p.model.label, p.fold) for p in predictions)
    if paper_masks == "auto" and len(lacking) == len(predictions):
        print(
            f"Paper protocol: no validation folder holds probabilities (<case>.npz), so every model's "
            f"segmentations (nnU-Net's argmax) are scored, not the reference code's tumour probability > "
            f"{PAPER_PROTOCOL_THRESHOLD:g}; for that rule rerun validation with --npz (nnUNetv2_train ... --val --npz)"
        )
        return frozenset()
    why = (
        "--paper-masks probability needs"
        if paper_masks == "probability"
        else "some validation folders hold probabilities and others do not, and one comparison must not mix "
        "tumour probability > 0.4 with the argmax; the paper protocol needs"
    )
    raise BenchmarkInputError(
        [
            f"{p.model.validation_folder(p.fold)} lacks <case>.npz of "
            f"{sum(not (p.model.validation_folder(p.fold) / f'{case}.npz').is_file() for case in p.expected)} of "
            f"{len(p.expected)} cases: run `{training_command(dataset, p.model, p.fold, '--val', '--npz')}`"
            for p in lacking
        ],
        headline=f"{why} nnU-Net's probabilities of every validation case in every folder (or pass "
        f"--paper-masks argmax to score every model's segmentations):",
    )


# --- the jobs and the process pool ------------------------------------------------------------


def case_jobs(
    predictions: Sequence[FoldPredictions],
    dataset: BenchmarkDataset,
    with_probabilities: frozenset[tuple[str, int]] = frozenset(),
) -> list[CaseJob]:
    """One job per validation case; the (model, fold) pairs in `with_probabilities` are scored
    from their saved probabilities (`<case>.npz` beside each prediction)."""
    by_fold: dict[int, list[FoldPredictions]] = {}
    for fold_prediction in predictions:
        by_fold.setdefault(fold_prediction.fold, []).append(fold_prediction)

    def prediction(p: FoldPredictions, case: str) -> tuple[str, Path, Path | None]:
        folder = p.model.validation_folder(p.fold)
        probabilities = folder / f"{case}.npz" if (p.model.label, p.fold) in with_probabilities else None
        return p.model.label, folder / f"{case}{dataset.file_ending}", probabilities

    return [
        CaseJob(fold, case, dataset.reference_file(case), tuple(prediction(p, case) for p in models))
        for fold, models in by_fold.items()
        for case in models[0].expected
    ]


def scoring_processes(requested: int | None) -> int:
    """-np, or by default nnU-Net's own process count (nnUNet_def_n_proc) capped at the CPUs this
    process may use."""
    if requested is not None:
        return requested
    from nnunetv2.configuration import default_num_processes

    return max(1, min(default_num_processes, cores_available()))


def map_cases(function: Callable, jobs: Sequence[CaseJob], num_processes: int | None, doing: str) -> list:
    """`function` of every job, in job order; cases run in parallel when there are several processes, with a
    progress bar (cases done, time left)."""
    processes = min(scoring_processes(num_processes), max(1, len(jobs)))
    print(f"{doing} {len(jobs)} validation cases with {processes} process(es)")
    progress = {"total": len(jobs), "desc": doing, "unit": "case", "mininterval": 5.0}
    if processes <= 1:
        return [function(job) for job in progress_bar(jobs, **progress)]
    # spawn, as nnU-Net's own evaluation: forked workers can deadlock on torch's threads
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context, initializer=quiet_library_noise) as pool:
        return list(progress_bar(pool.map(function, jobs), **progress))


def check_cases(jobs: Sequence[CaseJob], evaluator: CaseEvaluator, num_processes: int | None) -> None:
    """Every file of every case read and checked before any case is scored; all their problems at once."""
    problems = [
        problem for found in map_cases(evaluator.problems, jobs, num_processes, "Checking") for problem in found
    ]
    if problems:
        raise BenchmarkInputError(
            problems, headline=f"{len(problems)} problem(s) with the ground truth and predictions; nothing was scored:"
        )


def evaluate_cases(jobs: Sequence[CaseJob], evaluator: CaseEvaluator, num_processes: int | None) -> pd.DataFrame:
    """The per-case table of every job, in job order."""
    results = map_cases(evaluator, jobs, num_processes, "Scoring")
    return per_case_table(row for rows in results for row in rows)
