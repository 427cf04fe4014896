"""`nnunetv2_hlfd benchmark`: how much accuracy each student keeps, for how much size and speed.

It scores nnU-Net's own validation predictions of every trainer and fold against the
dataset's ground truth (`metrics`), compares every trainer with a reference trainer
(`statistics`, via `report`), measures each model's cost (`compression`) and writes the
report (`report`, `figures`) into one output folder. docs/EVALUATION.md describes it all.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from nnunetv2.evaluation.evaluate_predictions import label_or_region_to_key, region_or_label_to_mask

from nnunetv2_hlfd.evaluation.command import BenchmarkSettings
from nnunetv2_hlfd.evaluation.metrics import LabelOrRegion, evaluate_case, paper_protocol_scores
from nnunetv2_hlfd.evaluation.results import (BenchmarkDataset, BenchmarkInputError, FoldPredictions, ModelFolder,
                                              check_folds_trained, check_ground_truth, check_model_folder,
                                              check_no_extra_predictions, check_prediction, fold_predictions,
                                              open_dataset, parse_model, raise_missing_validation,
                                              read_segmentation, run_validation)
from nnunetv2_hlfd.evaluation.statistics import per_case_rows, per_case_table

TUMOUR_NAMES = ("tumor", "tumour")
# Compared between trainers; volumes and lesion counts stay descriptive (CSV/JSON only).
STANDARD_METRICS = ("dsc", "rvd", "abs_rvd", "voe", "hd95", "surface_dice",
                    "lesion_sensitivity", "lesion_precision", "lesion_f1")
PAPER_METRICS = ("dsc", "rvd")


def compared_metrics(settings: BenchmarkSettings) -> tuple[str, ...]:
    return PAPER_METRICS if settings.protocol == "paper" else STANDARD_METRICS


# --- one case ---------------------------------------------------------------------------

@dataclass(frozen=True)
class CaseJob:
    """One validation case: its ground truth and every model's prediction of it."""

    fold: int
    case: str
    reference: Path
    predictions: tuple[tuple[str, Path], ...]  # (model label, prediction file)


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
    tolerance_mm: float
    convention: str
    lesion_iou_threshold: float | None

    def __call__(self, job: CaseJob) -> list[dict]:
        reference, spacing = read_segmentation(job.reference, self.reader)
        rows = []
        for label, path in job.predictions:
            prediction, _ = read_segmentation(path, self.reader)
            check_prediction(prediction, reference, self.allowed_labels, path)
            rows += per_case_rows(label, job.fold, job.case, self.scores(prediction, reference, spacing),
                                  self.class_names)
        return rows

    def scores(self, prediction: np.ndarray, reference: np.ndarray, spacing) -> dict:
        prediction, reference = self.without_ignored_voxels(prediction, reference)
        if self.protocol == "paper":
            tumour = paper_protocol_scores(region_or_label_to_mask(prediction, self.tumour),
                                           region_or_label_to_mask(reference, self.tumour))
            return {self.tumour: {"dsc": tumour.dsc, "rvd": tumour.rvd, "n_tumour_slices": tumour.n_slices}}
        return evaluate_case(prediction, reference, spacing, self.classes, self.tolerance_mm,
                             convention=self.convention, lesion_iou_threshold=self.lesion_iou_threshold)

    def without_ignored_voxels(self, prediction: np.ndarray, reference: np.ndarray):
        """Unannotated voxels (the ignore label) count as background in both, so, as in nnU-Net's
        own validation, they add neither false positives nor false negatives to any class."""
        if self.ignore_label is None:
            return prediction, reference
        ignored = reference == self.ignore_label
        return np.where(ignored, 0, prediction), np.where(ignored, 0, reference)


def case_evaluator(dataset: BenchmarkDataset, settings: BenchmarkSettings,
                   tumour: LabelOrRegion | None) -> CaseEvaluator:
    manager = dataset.label_manager
    return CaseEvaluator(dataset.plans_manager.image_reader_writer_class(), tuple(dataset.classes()),
                         dataset.class_names(), tuple(manager.all_labels), manager.ignore_label, settings.protocol,
                         tumour, settings.tolerance_mm, settings.empty_convention, settings.lesion_iou_threshold)


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
        raise BenchmarkInputError(f"{dataset.name} has {what} in its dataset.json labels ({known}); "
                                  f"name the tumour class with --tumour-label NAME_OR_VALUE")
    return None


# --- all cases --------------------------------------------------------------------------

def case_jobs(predictions: Sequence[FoldPredictions], dataset: BenchmarkDataset) -> list[CaseJob]:
    by_fold: dict[int, list[FoldPredictions]] = {}
    for fold_prediction in predictions:
        by_fold.setdefault(fold_prediction.fold, []).append(fold_prediction)
    return [CaseJob(fold, case, dataset.reference_file(case),
                    tuple((p.model.label, p.model.validation_folder(fold) / f"{case}{dataset.file_ending}")
                          for p in models))
            for fold, models in by_fold.items() for case in models[0].expected]


def evaluate_cases(jobs: Sequence[CaseJob], evaluator: CaseEvaluator, num_processes: int) -> pd.DataFrame:
    """The per-case table of every job, in job order; cases run in parallel when num_processes > 1."""
    print(f"Scoring {len(jobs)} validation cases with {max(1, num_processes)} process(es)")
    if num_processes <= 1 or len(jobs) <= 1:
        results = list(map(evaluator, jobs))
    else:
        # spawn, as nnU-Net's own evaluation: forked workers can deadlock on torch's threads
        with ProcessPoolExecutor(min(num_processes, len(jobs)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(evaluator, jobs))
    return per_case_table(row for rows in results for row in rows)


# --- models and their predictions -------------------------------------------------------

def benchmarked_models(settings: BenchmarkSettings, dataset: BenchmarkDataset) -> list[ModelFolder]:
    models = [parse_model(name, settings.plans, settings.configuration, dataset) for name in settings.trainers]
    labels = [model.label for model in models]
    if len(set(labels)) != len(labels):
        raise BenchmarkInputError(f"a trainer is named twice in --trainers ({', '.join(labels)}); name each once")
    for model in models:
        check_model_folder(model, dataset)
    if settings.reference not in labels:
        raise BenchmarkInputError(f"the reference trainer {settings.reference!r} is not among the benchmarked "
                                  f"trainers ({', '.join(labels)}); add it to --trainers or choose --reference")
    return models


def complete_predictions(models: Sequence[ModelFolder], settings: BenchmarkSettings,
                         dataset: BenchmarkDataset) -> list[FoldPredictions]:
    """Every model's predictions of every validation case of every fold, or an error naming
    each incomplete (trainer, fold) and its validation command; none is skipped."""
    def scan():
        return [fold_predictions(model, fold, dataset) for fold in settings.folds for model in models]

    predictions = scan()
    check_no_extra_predictions(predictions)
    incomplete = [p for p in predictions if p.missing]
    if incomplete and settings.run_missing_validation:
        for p in incomplete:
            run_validation(dataset, p.model, p.fold, validation_device())
        predictions = scan()
        incomplete = [p for p in predictions if p.missing]
    if incomplete:
        raise_missing_validation(incomplete, dataset)
    return predictions


def validation_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# --- the command ------------------------------------------------------------------------

def default_output(settings: BenchmarkSettings, dataset: BenchmarkDataset) -> Path:
    suffix = "_paper" if settings.protocol == "paper" else ""
    return settings.output or dataset.results / f"hlfd_benchmark_{settings.configuration}{suffix}"


def run_benchmark(settings: BenchmarkSettings, preprocessed_root: Path | None = None,
                  results_root: Path | None = None) -> Path:
    """Score, compare, measure and write the report; returns the output folder."""
    from nnunetv2.paths import nnUNet_preprocessed, nnUNet_results

    from nnunetv2_hlfd.evaluation import compression, report

    dataset = open_dataset(settings.dataset, settings.plans, Path(preprocessed_root or nnUNet_preprocessed),
                           Path(results_root or nnUNet_results))
    settings = replace(settings, dataset=dataset.name)  # the report names the dataset, not the id given
    output = default_output(settings, dataset)
    report.refuse_existing_output(output, settings.overwrite)
    models = benchmarked_models(settings, dataset)
    tumour = tumour_class(dataset, settings.tumour_label, required=settings.protocol == "paper")
    check_folds_trained(models, settings.folds, dataset)
    check_ground_truth(dataset, settings.folds)
    if settings.speed:
        compression.check_devices(settings.devices)
    predictions = complete_predictions(models, settings, dataset)

    table = evaluate_cases(case_jobs(predictions, dataset), case_evaluator(dataset, settings, tumour),
                           settings.num_processes)
    results = report.analyse(table, settings, compared_metrics(settings), dataset.class_names().get(tumour))
    costs = compression.measure_models(models, dataset, settings)
    compression_table = report.write_benchmark(output, results, costs)
    print(report.console_summary(results, compression_table, output))
    return output
