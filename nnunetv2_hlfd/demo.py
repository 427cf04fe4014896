"""The embedded default: the whole job on a generated dataset, with no downloads.

Generate a synthetic kidney-and-tumour CT dataset, plan and preprocess it with nnU-Net,
train a teacher (nnUNetTrainer), the student without distillation (nnUNetTrainerStudent)
and the HLFD student (nnUNetTrainerHLFD) on fold 0, predict the validation cases with
nnU-Net's own validation and print Dice per class for all three.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from nnunetv2_hlfd.synthetic import generate_synthetic_kidney_dataset

TRAINERS = ("nnUNetTrainer", "nnUNetTrainerStudent", "nnUNetTrainerHLFD")
REPO_TRAINERS = Path(__file__).resolve().parents[1] / "trainers"


@dataclass
class DemoSettings:
    workdir: Path
    dataset_id: int = 990
    num_cases: int = 16
    shape: tuple[int, int, int] = (16, 64, 64)
    configuration: str = "2d"
    epochs: int = 8
    iterations_per_epoch: int = 20
    device: str = "cpu"
    overwrite: bool = False
    seed: int = 0


def prepare_workdir(settings: DemoSettings) -> dict[str, Path]:
    """The demo's own nnU-Net folders, so it never touches a user's real nnU-Net data."""
    if settings.workdir.exists() and any(settings.workdir.iterdir()):
        if not settings.overwrite:
            raise FileExistsError(f"Demo folder {settings.workdir} already exists and is not empty. Pass "
                                  f"--overwrite to delete it and start over, or choose another --workdir.")
        shutil.rmtree(settings.workdir)
    folders = {name: settings.workdir / name for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for name, folder in folders.items():
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(folder)
    _point_nnunet_at_our_trainers()
    return folders


def _point_nnunet_at_our_trainers() -> None:
    paths = [p for p in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    if not any((Path(p) / "nnUNetTrainerHLFD.py").is_file() for p in paths):
        if not (REPO_TRAINERS / "nnUNetTrainerHLFD.py").is_file():
            raise RuntimeError("Cannot find the trainers/ folder of nnunetv2_hlfd; set nnUNet_extTrainer to it.")
        os.environ["nnUNet_extTrainer"] = os.pathsep.join(paths + [str(REPO_TRAINERS)])


def plan_and_preprocess(settings: DemoSettings) -> None:
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (extract_fingerprints, plan_experiments,
                                                                      preprocess)
    extract_fingerprints([settings.dataset_id], num_processes=2, check_dataset_integrity=True)
    plan_experiments([settings.dataset_id])
    preprocess([settings.dataset_id], configurations=(settings.configuration,), num_processes=(2,))


def train_and_validate(trainer_name: str, settings: DemoSettings) -> Path:
    """nnU-Net's own training and validation, shortened to the demo's length."""
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args(str(settings.dataset_id), settings.configuration, 0, trainer_name,
                                    device=torch.device(settings.device))
    trainer.num_epochs = settings.epochs
    trainer.num_iterations_per_epoch = settings.iterations_per_epoch
    trainer.num_val_iterations_per_epoch = max(1, settings.iterations_per_epoch // 5)
    trainer.run_training()
    trainer.perform_actual_validation()
    return Path(trainer.output_folder) / "validation" / "summary.json"


def dice_per_class(summary_file: Path) -> dict[str, float]:
    summary = json.loads(summary_file.read_text())
    return {label: values["Dice"] for label, values in summary["mean"].items()}


def format_results(results: dict[str, dict[str, float]], label_names: dict[str, str]) -> str:
    labels = sorted({label for dice in results.values() for label in dice})
    header = f"{'trainer':<24}" + "".join(f"{label_names.get(label, label):>12}" for label in labels)
    rows = [f"{trainer:<24}" + "".join(f"{dice.get(label, float('nan')):>12.3f}" for label in labels)
            for trainer, dice in results.items()]
    return "\n".join(["Validation Dice per class (fold 0):", header, *rows])


def run_demo(settings: DemoSettings) -> dict[str, dict[str, float]]:
    folders = prepare_workdir(settings)
    dataset = generate_synthetic_kidney_dataset(folders["nnUNet_raw"], dataset_id=settings.dataset_id,
                                                num_training_cases=settings.num_cases, shape=settings.shape,
                                                seed=settings.seed)
    plan_and_preprocess(settings)
    results = {name: dice_per_class(train_and_validate(name, settings)) for name in TRAINERS}
    labels = json.loads((dataset / "dataset.json").read_text())["labels"]
    print(format_results(results, {str(v): k for k, v in labels.items()}))
    return results
