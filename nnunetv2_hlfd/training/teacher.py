"""Finding, checking and loading the frozen teacher: a trained nnU-Net model folder.

Default teacher: the nnUNetTrainer model of the same dataset, plans, configuration and
fold. HLFD_TEACHER points to any other trained model folder (a trainer folder such as
`.../nnUNetTrainer__nnUNetResEncUNetLPlans__2d`, or one of its `fold_X` folders) and
HLFD_TEACHER_CHECKPOINT names its checkpoint file.

An ensemble teacher is several such models: HLFD_TEACHER_FOLDS lists the folds of the
trainer folder(s), and/or HLFD_TEACHER lists model folders separated by os.pathsep. Each
member is checked exactly as a single teacher is (teacher_ensemble.py combines their maps).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.utilities.file_path_utilities import convert_trainer_plans_config_to_identifier
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn

from nnunetv2_hlfd.models.model_plans import ModelPlans
from nnunetv2_hlfd.training.safe_checkpoint import load_checkpoint_weights_only
from nnunetv2_hlfd.utilities.environment import UserFacingError, env_flag
from nnunetv2_hlfd.utilities.problems import ProblemListError
from nnunetv2_hlfd.utilities.trainer_search import find_trainer_class

TEACHER_ENV = "HLFD_TEACHER"
TEACHER_CHECKPOINT_ENV = "HLFD_TEACHER_CHECKPOINT"
TEACHER_FOLDS_ENV = "HLFD_TEACHER_FOLDS"
TEACHER_ROTATION_ENV = "HLFD_TEACHER_ROTATION"
TEACHER_PRECISION_ENV = "HLFD_TEACHER_PRECISION"
_TEACHER_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# "student": the autocast the student's step runs in (nnU-Net: fp16 on CUDA, none on CPU).
TEACHER_PRECISIONS = ("student", "fp32", *_TEACHER_AUTOCAST_DTYPES)
DEFAULT_TEACHER_TRAINER = "nnUNetTrainer"


class TeacherError(ProblemListError, UserFacingError):
    """The teacher cannot be used; the message says why and how to fix it."""


@dataclass(frozen=True)
class TeacherSource:
    fold_folder: Path
    checkpoint: Path

    @property
    def model_folder(self) -> Path:
        return self.fold_folder.parent


@dataclass
class Teacher:
    """A trained model folder, read (plans, labels, weights) before its network is built,
    so an incompatible teacher is refused with a reason rather than a shape error."""

    source: TeacherSource
    plans_manager: PlansManager
    configuration_manager: ConfigurationManager
    dataset_json: dict
    trainer_name: str
    weights: dict
    network: nn.Module | None = None
    weights_sha256: str = ""  # content hash of the weights: the teacher's identity when a run resumes

    @property
    def identity(self) -> dict:
        return {"checkpoint": str(self.source.checkpoint), "weights_sha256": self.weights_sha256}

    @property
    def plans(self) -> ModelPlans:
        return ModelPlans(self.plans_manager, self.configuration_manager, self.dataset_json)

    def build_architecture(self) -> nn.Module:
        """The teacher's network, untrained, as its own trainer class builds it."""
        return self.plans.build_network(find_trainer_class(self.trainer_name), deep_supervision=True)

    def load_network(self, device: torch.device) -> nn.Module:
        """Build, load and freeze the network; it stays in eval mode and out of every optimizer."""
        network = self.build_architecture()
        network.load_state_dict(self.weights)
        network.decoder.deep_supervision = True  # UPD reads the teacher's middle-scale predictions
        network.requires_grad_(False)
        self.network = network.to(device).eval()
        self.weights = {}  # the network holds them now
        return self.network


def teacher_precision() -> str:
    """The teacher's precision from HLFD_TEACHER_PRECISION, checked once before training starts."""
    precision = os.environ.get(TEACHER_PRECISION_ENV, "student").strip().lower()
    if precision not in TEACHER_PRECISIONS:
        raise TeacherError(
            f"{TEACHER_PRECISION_ENV}={precision} is not one of {', '.join(TEACHER_PRECISIONS)}; "
            f"unset it to run the teacher in the student's precision."
        )
    return precision


def teacher_autocast(device_type: str, precision: str):
    """The context the teacher's forward pass runs in; nested inside the student's autocast, so
    "student" changes nothing and the others override it for the teacher alone."""
    if precision == "student":
        return contextlib.nullcontext()
    if precision == "fp32":
        return torch.autocast(device_type, enabled=False)
    return torch.autocast(device_type, dtype=_TEACHER_AUTOCAST_DTYPES[precision])


def locate_teachers(
    results_root: str, dataset_name: str, plans_name: str, configuration: str, fold: int | str
) -> list[TeacherSource]:
    """The teacher's members: one for a single teacher, several for an ensemble."""
    explicit = os.environ.get(TEACHER_ENV, "").strip()
    folders = (
        [Path(f) for f in explicit.split(os.pathsep) if f.strip()]
        if explicit
        else [
            Path(results_root)
            / dataset_name
            / convert_trainer_plans_config_to_identifier(DEFAULT_TEACHER_TRAINER, plans_name, configuration)
        ]
    )
    for folder in folders:
        if explicit and not folder.is_dir():
            raise TeacherError(
                f"{TEACHER_ENV}={explicit}: the folder {folder} does not exist. Point {TEACHER_ENV} "
                f"to a trained nnU-Net model folder (the one holding fold_X/, or a fold_X folder; "
                f"several separated by '{os.pathsep}'), or unset it to use the default teacher."
            )
    folds = teacher_folds()
    sources = []
    for folder in folders:
        if folder.name.startswith("fold_"):
            if folds is not None:
                raise TeacherError(
                    f"{TEACHER_FOLDS_ENV} is set, but {TEACHER_ENV} names the fold folder {folder}; "
                    f"name its trainer folder {folder.parent} instead, or unset {TEACHER_FOLDS_ENV}."
                )
            fold_folders = [folder]
        else:
            fold_folders = [folder / f"fold_{f}" for f in (folds or [fold])]
        sources += [
            TeacherSource(
                f, _teacher_checkpoint(f, dataset_name, plans_name, configuration, f.name.removeprefix("fold_"))
            )
            for f in fold_folders
        ]
    return sources


def teacher_folds() -> list[str] | None:
    """HLFD_TEACHER_FOLDS, e.g. "0,1,2,3,4": the folds of each teacher trainer folder; None when unset."""
    value = os.environ.get(TEACHER_FOLDS_ENV, "").strip()
    if not value:
        return None
    folds = [f.strip() for f in value.split(",") if f.strip()]
    bad = [f for f in folds if not (f.isdigit() or f == "all")]
    if bad or not folds or len(set(folds)) != len(folds):
        raise TeacherError(
            f"{TEACHER_FOLDS_ENV}={value!r}: give distinct fold numbers (or 'all') separated by "
            f"commas, e.g. {TEACHER_FOLDS_ENV}=0,1,2,3,4."
        )
    return folds


def teacher_rotation() -> bool:
    """HLFD_TEACHER_ROTATION: an ensemble runs one member per step, in turn, instead of all of them."""
    return env_flag(TEACHER_ROTATION_ENV)


def _teacher_checkpoint(
    fold_folder: Path, dataset_name: str, plans_name: str, configuration: str, fold: int | str
) -> Path:
    named = os.environ.get(TEACHER_CHECKPOINT_ENV)
    if named:
        if (fold_folder / named).is_file():
            return fold_folder / named
        raise TeacherError(
            f"No teacher checkpoint {fold_folder / named} ({TEACHER_CHECKPOINT_ENV}={named}). "
            f"Check the file name, or unset {TEACHER_CHECKPOINT_ENV} to use checkpoint_final.pth."
        )
    if (fold_folder / "checkpoint_final.pth").is_file():
        return fold_folder / "checkpoint_final.pth"
    if (fold_folder / "checkpoint_best.pth").is_file():
        warnings.warn(
            f"Teacher {fold_folder} has no checkpoint_final.pth (training unfinished?); using checkpoint_best.pth."
        )
        return fold_folder / "checkpoint_best.pth"
    raise TeacherError(
        f"No teacher checkpoint in {fold_folder} (looked for checkpoint_final.pth and checkpoint_best.pth). "
        f"Train the teacher first: `nnUNetv2_train {dataset_name} {configuration} {fold} -p {plans_name}`, "
        f"or set {TEACHER_ENV} to the folder of another trained nnU-Net model."
    )


def open_teacher(source: TeacherSource) -> Teacher:
    for required in ("plans.json", "dataset.json"):
        if not (source.model_folder / required).is_file():
            raise TeacherError(
                f"Teacher folder {source.model_folder} has no {required}; it is not a trained "
                f"nnU-Net model folder. Point {TEACHER_ENV} to one (the folder holding fold_X/)."
            )
    plans_manager = PlansManager(load_json(str(source.model_folder / "plans.json")))
    checkpoint = load_checkpoint_weights_only(source.checkpoint)
    return Teacher(
        source,
        plans_manager,
        plans_manager.get_configuration(checkpoint["init_args"]["configuration"]),
        load_json(str(source.model_folder / "dataset.json")),
        checkpoint["trainer_name"],
        checkpoint["network_weights"],
        weights_sha256=weights_sha256(checkpoint["network_weights"]),
    )


def weights_sha256(weights: dict) -> str:
    """SHA-256 of the weights' names, shapes, types and bytes: the same for a copied or moved checkpoint."""
    digest = hashlib.sha256()
    for name in sorted(weights):
        tensor = weights[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
