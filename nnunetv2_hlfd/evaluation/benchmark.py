"""`nnunetv2_hlfd benchmark`: how much accuracy each student keeps, for how much size and speed.

It scores nnU-Net's own validation predictions of every trainer and fold against the
dataset's ground truth (`metrics`), compares every trainer with a reference trainer
(`statistics`, via `report`), measures each model's cost (`compression`) and writes the
report (`report`, `figures`) into one output folder. docs/EVALUATION.md describes it all.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from nnunetv2.evaluation.evaluate_predictions import label_or_region_to_key, region_or_label_to_mask

from nnunetv2_hlfd import output_folder
from nnunetv2_hlfd.evaluation.metrics import (
    PAPER_PROTOCOL_THRESHOLD,
    LabelOrRegion,
    evaluate_case,
    paper_protocol_scores,
    paper_protocol_scores_from_probabilities,
    paper_slice_axis,
)
from nnunetv2_hlfd.evaluation.model_folders import (
    BenchmarkDataset,
    BenchmarkInputError,
    FoldPredictions,
    ModelFolder,
    check_folds_trained,
    check_ground_truth,
    check_model_folder,
    check_no_extra_predictions,
    check_prediction,
    check_trainer_classes,
    fold_predictions,
    open_dataset,
    parse_model,
    raise_missing_validation,
    read_segmentation,
    run_validation,
    training_command,
)
from nnunetv2_hlfd.evaluation.protocol import PROTOCOLS
from nnunetv2_hlfd.evaluation.provenance import cores_available, provenance
from nnunetv2_hlfd.evaluation.settings import BenchmarkSettings
from nnunetv2_hlfd.evaluation.statistics import per_case_rows, per_case_table
from nnunetv2_hlfd.progress_bar import progress_bar
from nnunetv2_hlfd.timing import default_device

TUMOUR_NAMES = ("tumor", "tumour")


def compared_metrics(settings: BenchmarkSettings) -> tuple[str, ...]:
    return PROTOCOLS[settings.protocol].compared_metrics


def tested_metrics(settings: BenchmarkSettings) -> tuple[str, ...]:
    return PROTOCOLS[settings.protocol].tested_metrics


def primary_endpoint(
    settings: BenchmarkSettings, dataset: BenchmarkDataset, tumour: LabelOrRegion | None
) -> tuple[str, str]:
    """(class name, metric) of --primary-endpoint; by default the tumour's DSC, else the first class's."""
    names = dataset.class_names()
    if settings.primary_endpoint is None:
        return names[tumour] if tumour is not None else next(iter(names.values())), "dsc"
    class_name, _, metric = settings.primary_endpoint.rpartition(":")
    known_classes = PROTOCOLS[settings.protocol].classes(names, tumour)
    if class_name not in known_classes or metric not in tested_metrics(settings):
        raise BenchmarkInputError(
            f"--primary-endpoint {settings.primary_endpoint!r} is not CLASS:METRIC of a "
            f"tested comparison: classes {', '.join(known_classes)}; metrics "
            f"{', '.join(tested_metrics(settings))} (e.g. {known_classes[0]}:dsc)"
        )
    return class_name, metric


# --- one case ---------------------------------------------------------------------------


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

    def __call__(self, job: CaseJob) -> list[dict]:
        reference = read_segmentation(
            job.reference, self.reader, "preprocess the dataset again (nnUNetv2_plan_and_preprocess), which copies it"
        )
        rows = []
        for label, path, probabilities in job.predictions:
            prediction = read_segmentation(path, self.reader, "rerun nnU-Net's validation of this fold (--val)")
            check_prediction(prediction, reference, self.allowed_labels, path, job.case)
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


def tumour_class(dataset: BenchmarkDataset, requested: str | None, required: bool) -> LabelOrRegion | None:
    """The tumour label or region: `requested` (a name or a value such as 2 or (2, 3)), else the
    class named tumor/tumour in dataset.json. None when there is none and none is required."""
    names = dataset.class_names()
    if requested is not None:
        matches = [c for c, name in names.items() if requested in (name, label_or_region_to_key(c))]
    else:
        matches = [c for c, name in names.items() if name.lower() in TUMOUR_NAMES]
    if matches:
        return matches[0]
    if requested is not None or required:
        known = ", ".join(f"{name} ({label_or_region_to_key(c)})" for c, name in names.items())
        what = f"no class {requested!r}" if requested is not None else "no class named tumor or tumour"
        raise BenchmarkInputError(
            f"{dataset.name} has {what} in its dataset.json labels ({known}); "
            f"name the tumour class with --tumour-label NAME_OR_VALUE"
        )
    return None


# --- all cases --------------------------------------------------------------------------


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


def scoring_processes(requested: int | None) -> int:
    """-np, or by default nnU-Net's own process count (nnUNet_def_n_proc) capped at the CPUs this
    process may use."""
    if requested is not None:
        return requested
    from nnunetv2.configuration import default_num_processes

    return max(1, min(default_num_processes, cores_available()))


def evaluate_cases(jobs: Sequence[CaseJob], evaluator: CaseEvaluator, num_processes: int | None) -> pd.DataFrame:
    """The per-case table of every job, in job order; cases run in parallel when there are several
    processes, with a progress bar (cases scored, time left)."""
    processes = min(scoring_processes(num_processes), max(1, len(jobs)))
    print(f"Scoring {len(jobs)} validation cases with {processes} process(es)")
    progress = {"total": len(jobs), "desc": "Scoring", "unit": "case", "mininterval": 5.0}
    if processes <= 1:
        results = [evaluator(job) for job in progress_bar(jobs, **progress)]
    else:
        # spawn, as nnU-Net's own evaluation: forked workers can deadlock on torch's threads
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(progress_bar(pool.map(evaluator, jobs), **progress))
    return per_case_table(row for rows in results for row in rows)


# --- models and their predictions -------------------------------------------------------


def benchmarked_models(settings: BenchmarkSettings, dataset: BenchmarkDataset) -> list[ModelFolder]:
    models = [parse_model(name, settings.plans, settings.configuration, dataset) for name in settings.trainers]
    labels = [model.label for model in models]
    if len(set(labels)) != len(labels):
        raise BenchmarkInputError(f"a trainer is named twice in --trainers ({', '.join(labels)}); name each once")
    for model in models:
        check_model_folder(model, dataset)
    check_trainer_classes(models)  # needed for the compression report: fail before scoring, not after
    if settings.reference not in labels:
        raise BenchmarkInputError(
            f"the reference trainer {settings.reference!r} is not among the benchmarked "
            f"trainers ({', '.join(labels)}); add it to --trainers or choose --reference"
        )
    return models


def complete_predictions(
    models: Sequence[ModelFolder], settings: BenchmarkSettings, dataset: BenchmarkDataset
) -> list[FoldPredictions]:
    """Every model's predictions of every validation case of every fold, or an error naming
    each incomplete (trainer, fold) and its validation command; none is skipped."""

    def scan():
        return [fold_predictions(model, fold, dataset) for fold in settings.folds for model in models]

    predictions = scan()
    check_no_extra_predictions(predictions)
    incomplete = [p for p in predictions if p.missing]
    if incomplete and settings.run_missing_validation:
        for p in incomplete:
            run_validation(dataset, p.model, p.fold, default_device())
        predictions = scan()
        incomplete = [p for p in predictions if p.missing]
    if incomplete:
        raise_missing_validation(incomplete, dataset)
    return predictions


# --- the command ------------------------------------------------------------------------


def default_output(settings: BenchmarkSettings, dataset: BenchmarkDataset) -> Path:
    suffix = PROTOCOLS[settings.protocol].output_suffix
    return settings.output or dataset.results / f"hlfd_benchmark_{settings.configuration}{suffix}"


def run_benchmark(
    settings: BenchmarkSettings, preprocessed_root: Path | None = None, results_root: Path | None = None
) -> Path:
    """Score, compare, measure and write the report; returns the output folder."""
    from nnunetv2.paths import nnUNet_preprocessed, nnUNet_results

    from nnunetv2_hlfd.evaluation import compression, report

    dataset = open_dataset(
        settings.dataset,
        settings.plans,
        Path(preprocessed_root or nnUNet_preprocessed),
        Path(results_root or nnUNet_results),
    )
    # the report names the dataset, not the id given, and the devices timed on
    settings = replace(settings, dataset=dataset.name, devices=compression.timing_devices(settings.devices))
    output = default_output(settings, dataset)
    if problems := output_folder.output_problems(output, "benchmark", settings.overwrite):
        raise BenchmarkInputError(problems)
    models = benchmarked_models(settings, dataset)
    protocol = PROTOCOLS[settings.protocol]
    tumour = tumour_class(dataset, settings.tumour_label, required=protocol.tumour_only)
    endpoint = primary_endpoint(settings, dataset, tumour)
    surface_dice_tolerances(dataset, settings)  # refuse bad ones before scoring
    check_folds_trained(models, settings.folds, dataset)
    check_ground_truth(dataset, settings.folds)
    if settings.speed:
        compression.check_devices(settings.devices)
    predictions = complete_predictions(models, settings, dataset)

    with_probabilities = (
        folds_with_probabilities(predictions, dataset, settings.paper_masks) if protocol.tumour_only else frozenset()
    )
    table = evaluate_cases(
        case_jobs(predictions, dataset, with_probabilities),
        case_evaluator(dataset, settings, tumour),
        settings.num_processes,
    )
    notes = (
        (slice_axis_note(dataset, settings.plans),) if protocol.tumour_only else (tolerance_note(dataset, settings),)
    )
    results = report.analyse(
        table,
        settings,
        compared_metrics(settings),
        dataset.class_names().get(tumour),
        notes,
        provenance(dataset.preprocessed / "splits_final.json"),
        tested_metrics(settings),
        endpoint,
    )
    costs = compression.measure_models(models, dataset, settings)
    with output_folder.staged(output, "benchmark") as staging:
        compression_table = report.write_benchmark(staging, results, costs)
    print(report.console_summary(results, compression_table, output))
    return output
