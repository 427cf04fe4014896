"""The trainers the benchmark times: nnU-Net's own trainer classes, initialised from plans
without a dataset, so each timed step is exactly the `train_step` that training runs."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_hlfd.distillation.config import DistillationConfig
from nnunetv2_hlfd.training.distillation_trainer import nnUNetTrainerDistillation
from nnunetv2_hlfd.training.student_trainer import nnUNetTrainerStudent
from nnunetv2_hlfd.training.teacher import DEFAULT_TEACHER_TRAINER, Teacher, TeacherSource, weights_sha256
from nnunetv2_hlfd.utilities.environment import temporary_environment
from nnunetv2_hlfd.utilities.problems import UserFacingError
from nnunetv2_hlfd.utilities.trainer_search import find_trainer_class


def method_trainer(method: str | type | DistillationConfig, name: str = "method") -> type[nnUNetTrainerDistillation]:
    """A distillation trainer class: by name ('HLFD' or 'nnUNetTrainerHLFD', as nnU-Net finds
    trainers), the class itself (found once, used for every setting), or a trainer declared on the spot
    for a DistillationConfig."""
    if isinstance(method, DistillationConfig):
        return type(f"nnUNetTrainer{name}", (nnUNetTrainerDistillation,), {"distillation": method})
    if isinstance(method, type):
        trainer_class, trainer_name = method, method.__name__
    else:
        trainer_name = method if method.startswith("nnUNetTrainer") else f"nnUNetTrainer{method}"
        trainer_class = find_trainer_class(trainer_name)
    if not issubclass(trainer_class, nnUNetTrainerDistillation):
        raise UserFacingError(
            f"{trainer_name} is not a distillation trainer, so it has no distillation step to time; name "
            f"distillation trainers (e.g. HLFD,KD,HLFDMobile): the plain student's step is timed anyway"
        )
    return trainer_class


def random_teacher(plans: dict, configuration: str, dataset_json: dict, device: torch.device) -> Teacher:
    """The nnU-Net network the plans define, randomly initialised and frozen as a loaded teacher is;
    its weights do not change a step's cost."""
    plans_manager = PlansManager(plans)
    in_memory = TeacherSource(Path("<in memory>"), Path("<in memory>"))
    teacher = Teacher(
        in_memory,
        plans_manager,
        plans_manager.get_configuration(configuration),
        dataset_json,
        DEFAULT_TEACHER_TRAINER,
        weights={},
    )
    teacher.weights = teacher.build_architecture().state_dict()
    teacher.weights_sha256 = weights_sha256(teacher.weights)
    teacher.load_network(device)
    return teacher


def _with_given_teacher(trainer_class: type[nnUNetTrainerDistillation]) -> type:
    """The trainer class with its teacher (or an ensemble's members) handed over instead of loaded from
    nnUNet_results."""

    def _load_teachers(self):
        self.teachers = list(self.given_teachers)

    return type(trainer_class.__name__, (trainer_class,), {"_load_teachers": _load_teachers})


def initialized_trainer(
    trainer_class: type,
    plans: dict,
    configuration: str,
    dataset_json: dict,
    device: torch.device,
    teacher: Teacher | list[Teacher] | None = None,
) -> nnUNetTrainerStudent:
    """`trainer_class` after nnU-Net's initialize: network, optimizer, loss (and teacher, terms, adapters).
    A list of teachers is an ensemble's members."""
    if teacher is not None:
        trainer_class = _with_given_teacher(trainer_class)
    with tempfile.TemporaryDirectory() as workdir, contextlib.redirect_stdout(io.StringIO()):
        results, preprocessed = Path(workdir, "results"), Path(workdir, "preprocessed")
        _placeholder_dataset(preprocessed, plans, configuration)
        with temporary_environment(nnUNet_results=str(results), nnUNet_preprocessed=str(preprocessed)):
            trainer = trainer_class({**plans, "continue_training": False}, configuration, 0, dataset_json, device)
            trainer.given_teachers = teacher if isinstance(teacher, list) else [teacher]
            trainer.initialize()
    return trainer


def _placeholder_dataset(preprocessed: Path, plans: dict, configuration: str) -> None:
    # initialize() infers the dataset class from the preprocessed files' ending; nothing is read.
    data_identifier = PlansManager(plans).get_configuration(configuration).data_identifier
    folder = preprocessed / plans["dataset_name"] / data_identifier
    folder.mkdir(parents=True)
    (folder / "placeholder.b2nd").touch()


def synthetic_batch(trainer: nnUNetTrainerStudent, seed: int = 0) -> dict:
    """A batch as nnU-Net's data loader hands it over: images and one label map per deep-supervision scale
    (one label map, not a list, with deep supervision off)."""
    generator = torch.Generator().manual_seed(seed)
    patch = trainer.configuration_manager.patch_size
    batch_size = trainer.configuration_manager.batch_size
    data = torch.randn((batch_size, trainer.num_input_channels, *patch), generator=generator)
    labels = torch.randint(
        0, trainer.label_manager.num_segmentation_heads, (batch_size, 1, *patch), generator=generator
    ).float()
    scales = trainer._get_deep_supervision_scales()
    if scales is None:
        return {"data": data.to(trainer.device), "target": labels.to(trainer.device)}
    target = [
        F.interpolate(labels, size=[round(p * s) for p, s in zip(patch, scale)], mode="nearest") for scale in scales
    ]
    return {"data": data.to(trainer.device), "target": [t.to(trainer.device) for t in target]}
