"""Reading trained nnU-Net model folders for the benchmark: where they are, whether they
belong to the dataset, and whether nnU-Net's validation predicted every validation case.

The validation predictions are `<results>/<dataset>/<trainer>__<plans>__<configuration>/
fold_X/validation/<case><file_ending>`, written by nnU-Net's own validation; the cases a
fold must have are its `val` list in the dataset's `splits_final.json`, and the ground truth
is `<preprocessed>/<dataset>/gt_segmentations`, the files nnU-Net's validation compares against.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nnunetv2.utilities.file_path_utilities import convert_trainer_plans_config_to_identifier
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_hlfd.evaluation.settings import DEFAULT_PLANS
from nnunetv2_hlfd.utilities.problems import ProblemListError, first_and_more

_MAX_NAMED = 10


class BenchmarkInputError(ProblemListError):
    """The benchmark cannot run on these inputs. Each problem names what and how to fix it."""


def _name_some(items: Iterable) -> str:
    return first_and_more(sorted(map(str, items)), _MAX_NAMED)


def read_json(path: Path) -> dict:
    """One of nnU-Net's JSON files (dataset.json, plans, splits_final.json); a damaged one is refused, named."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise BenchmarkInputError(
            f"{path} is not valid JSON ({error}): it was damaged or edited by hand; restore or correct it"
        ) from None


# --- the dataset --------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchmarkDataset:
    """A preprocessed nnU-Net dataset: its labels, its splits and its ground truth."""

    name: str
    preprocessed: Path
    results: Path
    dataset_json: dict
    plans_manager: PlansManager

    @property
    def label_manager(self):
        return self.plans_manager.get_label_manager(self.dataset_json)

    @property
    def file_ending(self) -> str:
        return self.dataset_json["file_ending"]

    @property
    def ground_truth(self) -> Path:
        return self.preprocessed / "gt_segmentations"

    def classes(self) -> list[int | tuple[int, ...]]:
        """The foreground labels, or regions, nnU-Net's own validation scores."""
        manager = self.label_manager
        return manager.foreground_regions if manager.has_regions else manager.foreground_labels

    def class_names(self) -> dict[int | tuple[int, ...], str]:
        """Each foreground label or region by its name in dataset.json."""
        by_value = {
            (tuple(value) if isinstance(value, list) else value): name
            for name, value in self.dataset_json["labels"].items()
        }
        return {region: by_value[region] for region in self.classes()}

    def validation_cases(self, fold: int) -> list[str]:
        splits_file = self.preprocessed / "splits_final.json"
        if not splits_file.is_file():
            raise BenchmarkInputError(
                f"{splits_file} does not exist: nnU-Net writes it when the first fold "
                f"trains, so no model of {self.name} has been trained yet"
            )
        splits = read_json(splits_file)
        if not 0 <= fold < len(splits):
            raise BenchmarkInputError(
                f"fold {fold} is not in {splits_file}, which has folds 0..{len(splits) - 1}; choose --folds among those"
            )
        return sorted(splits[fold]["val"])

    def reference_file(self, case: str) -> Path:
        return self.ground_truth / f"{case}{self.file_ending}"


def open_dataset(dataset: str, plans_name: str, preprocessed_root, results_root) -> BenchmarkDataset:
    """The dataset of -d (a name or an id) in nnU-Net's folders (paths, or nnunetv2.paths' own)."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    try:  # nnU-Net refuses an unset folder or an unknown id with a RuntimeError saying which
        preprocessed_root, results_root = Path(preprocessed_root), Path(results_root)
        name = maybe_convert_to_dataset_name(dataset)
    except RuntimeError as error:
        raise BenchmarkInputError(f"dataset {dataset!r}: {error}") from None
    preprocessed = preprocessed_root / name
    for required in (
        preprocessed / "dataset.json",
        preprocessed / f"{plans_name}.json",
        preprocessed / "gt_segmentations",
    ):
        if not required.exists():
            raise BenchmarkInputError(
                f"{required} does not exist; plan and preprocess {name} first "
                f"(nnUNetv2_plan_and_preprocess -d {name}), or check -p"
            )
    return BenchmarkDataset(
        name,
        preprocessed,
        results_root / name,
        read_json(preprocessed / "dataset.json"),
        PlansManager(read_json(preprocessed / f"{plans_name}.json")),
    )


# --- the models ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFolder:
    """One trained model: `<results>/<dataset>/<trainer>__<plans>__<configuration>`.

    `label` is how tables name it: the trainer, or `trainer__plans` for other plans.
    """

    label: str
    trainer: str
    plans: str
    configuration: str
    path: Path

    def fold_folder(self, fold: int | str) -> Path:
        return self.path / f"fold_{fold}"

    def validation_folder(self, fold: int) -> Path:
        return self.fold_folder(fold) / "validation"

    def checkpoint(self, fold: int | str) -> Path:
        return self.fold_folder(fold) / "checkpoint_final.pth"


def parse_model(label: str, default_plans: str, configuration: str, dataset: BenchmarkDataset) -> ModelFolder:
    """`TRAINER` (with the default plans) or `TRAINER__PLANS`, as nnU-Net names folders."""
    trainer, _, plans = label.partition("__")
    plans = plans or default_plans
    label = trainer if plans == default_plans else f"{trainer}__{plans}"
    folder = dataset.results / convert_trainer_plans_config_to_identifier(trainer, plans, configuration)
    return ModelFolder(label, trainer, plans, configuration, folder)


def trained_models(dataset: BenchmarkDataset, configuration: str) -> list[str]:
    """`trainer__plans` of every model folder of this dataset and configuration."""
    suffix = f"__{configuration}"
    if not dataset.results.is_dir():
        return []
    return sorted(
        p.name[: -len(suffix)]
        for p in dataset.results.iterdir()
        if p.is_dir() and p.name.endswith(suffix) and p.name.count("__") == 2
    )


def check_model_folder(model: ModelFolder, dataset: BenchmarkDataset) -> None:
    """The folder exists and was trained on this dataset with its labels."""
    if not model.path.is_dir():
        existing = trained_models(dataset, model.configuration)
        raise BenchmarkInputError(
            f"no results folder for trainer {model.label!r}: {model.path} does not exist. Trained models of "
            f"{dataset.name} {model.configuration}: {', '.join(existing) or 'none'}. Check the trainer name "
            f"(TRAINER or TRAINER__PLANS) and -c, or train it first"
        )
    problems = []
    plans_file, dataset_file = model.path / "plans.json", model.path / "dataset.json"
    for required in (plans_file, dataset_file):
        if not required.is_file():
            problems.append(f"{required} is missing; {model.path} is not a trained nnU-Net model folder")
    if not problems:
        trained_on = read_json(plans_file).get("dataset_name")
        if trained_on != dataset.name:
            problems.append(
                f"{model.path} belongs to dataset {trained_on!r} (its plans.json), not {dataset.name}; "
                f"it was copied or linked from another dataset; remove it or benchmark {trained_on}"
            )
        labels = read_json(dataset_file).get("labels")
        if labels != dataset.dataset_json["labels"]:
            problems.append(
                f"{model.path} was trained on the labels {labels}, but {dataset.name} has "
                f"{dataset.dataset_json['labels']}; retrain it on this dataset"
            )
    if problems:
        raise BenchmarkInputError(problems, headline=f"trainer {model.label!r} cannot be benchmarked:")


def trainer_class(model: ModelFolder) -> type:
    """The model's trainer class; it builds the network whose cost and speed are measured."""
    from nnunetv2_hlfd.utilities.trainer_search import find_trainer_class, trainer_search_path

    try:
        return find_trainer_class(model.trainer)
    except (RuntimeError, AssertionError) as error:  # nnU-Net: not found / not an nnUNetTrainer
        raise BenchmarkInputError(
            f"{model.path} exists, but its trainer class {model.trainer!r} cannot be loaded: no subclass of "
            f"nnUNetTrainer of that name is in nnunetv2.training.nnUNetTrainer or in the folders searched "
            f"({trainer_search_path()}). Point the nnUNet_extTrainer environment variable (paths separated by "
            f"{os.pathsep!r}) at the folder that defines {model.trainer}, or install the package that provides "
            f"it; without the class its network cannot be built"
        ) from error


def check_trainer_classes(models: Sequence[ModelFolder]) -> None:
    problems = []
    for model in models:
        try:
            trainer_class(model)
        except BenchmarkInputError as error:
            problems += error.problems
    if problems:
        raise BenchmarkInputError(problems, headline="trainer classes not found:")


def check_folds_trained(models: Sequence[ModelFolder], folds: Sequence[int], dataset: BenchmarkDataset) -> None:
    problems = []
    for model in models:
        present = sorted(p.name for p in model.path.glob("fold_*") if p.is_dir())
        for fold in folds:
            if not model.fold_folder(fold).is_dir():
                problems.append(
                    f"{model.label} has no fold {fold} ({model.path} holds {', '.join(present) or 'no folds'}); "
                    f"train it ({training_command(dataset, model, fold)}) or leave it out of --folds"
                )
    if problems:
        raise BenchmarkInputError(problems, headline="folds missing:")


# --- validation predictions ---------------------------------------------------------------


@dataclass(frozen=True)
class FoldPredictions:
    """What one model's validation folder holds for one fold, against the split's validation cases."""

    model: ModelFolder
    fold: int
    expected: tuple[str, ...]
    found: frozenset[str] = field(default_factory=frozenset)

    @property
    def missing(self) -> list[str]:
        return sorted(set(self.expected) - self.found)

    @property
    def extra(self) -> list[str]:
        return sorted(self.found - set(self.expected))


def fold_predictions(model: ModelFolder, fold: int, dataset: BenchmarkDataset) -> FoldPredictions:
    folder, ending = model.validation_folder(fold), dataset.file_ending
    found = frozenset(p.name[: -len(ending)] for p in folder.glob(f"*{ending}")) if folder.is_dir() else frozenset()
    return FoldPredictions(model, fold, tuple(dataset.validation_cases(fold)), found)


def training_command(dataset: BenchmarkDataset, model: ModelFolder, fold: int | str, *extra: str) -> str:
    plans = [] if model.plans == DEFAULT_PLANS else ["-p", model.plans]
    return " ".join(
        ["nnUNetv2_train", dataset.name, model.configuration, str(fold), "-tr", model.trainer, *plans, *extra]
    )


def check_no_extra_predictions(predictions: Iterable[FoldPredictions]) -> None:
    problems = [
        f"{p.model.validation_folder(p.fold)} has predictions of cases that are not validation cases of "
        f"fold {p.fold} in splits_final.json: {_name_some(p.extra)}. The split changed since the "
        f"validation ran, or files were added: delete the folder and rerun validation"
        for p in predictions
        if p.extra
    ]
    if problems:
        raise BenchmarkInputError(problems, headline="predictions that do not match the case list:")


def check_ground_truth(dataset: BenchmarkDataset, folds: Sequence[int]) -> None:
    missing = [
        case for fold in folds for case in dataset.validation_cases(fold) if not dataset.reference_file(case).is_file()
    ]
    if missing:
        raise BenchmarkInputError(
            f"{dataset.ground_truth} lacks the ground truth of validation cases "
            f"{_name_some(missing)}; rerun nnUNetv2_plan_and_preprocess -d {dataset.name}"
        )


def missing_validation_problem(predictions: FoldPredictions, dataset: BenchmarkDataset) -> str:
    p = predictions
    return (
        f"{p.model.label} fold {p.fold}: {p.model.validation_folder(p.fold)} has {len(p.expected) - len(p.missing)} "
        f"of {len(p.expected)} validation cases (missing {_name_some(p.missing)}); run "
        f"`{training_command(dataset, p.model, p.fold, '--val')}`"
    )


def raise_missing_validation(incomplete: Sequence[FoldPredictions], dataset: BenchmarkDataset) -> None:
    raise BenchmarkInputError(
        [missing_validation_problem(p, dataset) for p in incomplete],
        headline="validation predictions are missing (nothing is skipped); run nnU-Net's validation for each, "
        "or pass --run-missing-validation to run it from here:",
    )


def run_validation(dataset: BenchmarkDataset, model: ModelFolder, fold: int, device: str) -> None:
    """nnU-Net's own validation of one fold (what `nnUNetv2_train ... --val` runs)."""
    import torch
    from nnunetv2.run.run_training import run_training

    if not model.checkpoint(fold).is_file():
        raise BenchmarkInputError(
            f"cannot validate {model.label} fold {fold}: {model.checkpoint(fold)} does not "
            f"exist (training unfinished); finish it with "
            f"`{training_command(dataset, model, fold, '--c')}`"
        )
    print(f"Running nnU-Net's validation: {training_command(dataset, model, fold, '--val')}")
    run_training(
        dataset.name,
        model.configuration,
        fold,
        model.trainer,
        model.plans,
        only_run_validation=True,
        device=torch.device(device),
    )
