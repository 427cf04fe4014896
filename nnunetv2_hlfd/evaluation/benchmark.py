"""`nnunetv2_hlfd benchmark`: how much accuracy each student keeps, for how much size and speed.

It scores nnU-Net's own validation predictions of every trainer and fold against the
dataset's ground truth (`metrics`), compares every trainer with a reference trainer
(`statistics`, via `analysis`), measures each model's cost (`compression`) and writes the
report (`report`, `figures`) into one output folder. docs/EVALUATION.md describes it all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from nnunetv2.evaluation.evaluate_predictions import label_or_region_to_key

from nnunetv2_hlfd.evaluation.cases import (
    case_evaluator,
    case_jobs,
    check_cases,
    evaluate_cases,
    folds_with_probabilities,
    slice_axis_note,
    surface_dice_tolerances,
    tolerance_note,
)
from nnunetv2_hlfd.evaluation.metrics import LabelOrRegion
from nnunetv2_hlfd.evaluation.model_folders import (
    BenchmarkDataset,
    BenchmarkInputError,
    FoldPredictions,
    ModelFolder,
    check_folds_trained,
    check_ground_truth,
    check_model_folder,
    check_no_extra_predictions,
    check_trainer_classes,
    fold_predictions,
    open_dataset,
    parse_model,
    raise_missing_validation,
    run_validation,
)
from nnunetv2_hlfd.evaluation.protocol import PROTOCOLS
from nnunetv2_hlfd.evaluation.settings import BenchmarkSettings
from nnunetv2_hlfd.evaluation.tumour import tumour_name
from nnunetv2_hlfd.utilities import output_folder
from nnunetv2_hlfd.utilities.provenance import provenance
from nnunetv2_hlfd.utilities.timing import default_device

__all__ = ["run_benchmark"]


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


def tumour_class(dataset: BenchmarkDataset, requested: str | None, required: bool) -> LabelOrRegion | None:
    """The tumour label or region: `requested` (a name or a value such as 2 or (2, 3)), else the
    class named tumor or tumour in dataset.json (`tumour.tumour_name`). None when there is none and none is
    required."""
    names = dataset.class_names()
    if requested is not None:
        matches = [c for c, name in names.items() if requested in (name, label_or_region_to_key(c))]
    else:
        matches = [c for c, name in names.items() if name == tumour_name(names.values())]
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

    from nnunetv2_hlfd.evaluation import analysis, compression, report
    from nnunetv2_hlfd.evaluation.timing import model_speed

    dataset = open_dataset(
        settings.dataset, settings.plans, preprocessed_root or nnUNet_preprocessed, results_root or nnUNet_results
    )
    # the report names the dataset, not the id given, and the devices timed on
    settings = replace(settings, dataset=dataset.name, devices=model_speed.timing_devices(settings.devices))
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
        model_speed.check_devices(settings.devices)
    predictions = complete_predictions(models, settings, dataset)

    with_probabilities = (
        folds_with_probabilities(predictions, dataset, settings.paper_masks) if protocol.tumour_only else frozenset()
    )
    jobs, evaluator = case_jobs(predictions, dataset, with_probabilities), case_evaluator(dataset, settings, tumour)
    check_cases(jobs, evaluator, settings.num_processes)
    table = evaluate_cases(jobs, evaluator, settings.num_processes)
    notes = (
        (slice_axis_note(dataset, settings.plans),) if protocol.tumour_only else (tolerance_note(dataset, settings),)
    )
    results = analysis.analyse(
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
    compression_table = compression.compression_table(costs, table, settings.teacher, settings.reference)
    with output_folder.staged(output, "benchmark") as staging:
        report.write_benchmark(staging, results, costs, compression_table)
    print(report.console_summary(results, compression_table, output))
    return output
