"""Finding, checking and loading the frozen teacher: a trained nnU-Net model folder.

Default teacher: the nnUNetTrainer model of the same dataset, plans, configuration and
fold. HLFD_TEACHER points to any other trained model folder (a trainer folder such as
`.../nnUNetTrainer__nnUNetResEncUNetLPlans__2d`, or one of its `fold_X` folders) and
HLFD_TEACHER_CHECKPOINT names its checkpoint file.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn

from nnunetv2_hlfd.training.safe_checkpoint import load_checkpoint_weights_only

TEACHER_ENV = "HLFD_TEACHER"
TEACHER_CHECKPOINT_ENV = "HLFD_TEACHER_CHECKPOINT"
ALLOW_LEAK_ENV = "HLFD_ALLOW_TEACHER_LEAK"
TEACHER_PRECISION_ENV = "HLFD_TEACHER_PRECISION"
_TEACHER_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# "student": the autocast the student's step runs in (nnU-Net: fp16 on CUDA, none on CPU).
TEACHER_PRECISIONS = ("student", "fp32", *_TEACHER_AUTOCAST_DTYPES)
DEFAULT_TEACHER_TRAINER = "nnUNetTrainer"


class TeacherError(RuntimeError):
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

    def build_architecture(self) -> nn.Module:
        """The teacher's network, untrained, as its own trainer class builds it."""
        trainer_class = recursive_find_trainer_class_by_name(self.trainer_name)
        pm, cm = self.plans_manager, self.configuration_manager
        return trainer_class.build_network_architecture(
            pm, cm, determine_num_input_channels(pm, cm, self.dataset_json),
            pm.get_label_manager(self.dataset_json).num_segmentation_heads, True)

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
    precision = os.environ.get(TEACHER_PRECISION_ENV, "student").lower()
    if precision not in TEACHER_PRECISIONS:
        raise TeacherError(f"{TEACHER_PRECISION_ENV}={precision} is not one of {', '.join(TEACHER_PRECISIONS)}.")
    return precision


def teacher_autocast(device_type: str, precision: str):
    """The context the teacher's forward pass runs in; nested inside the student's autocast, so
    "student" changes nothing and the others override it for the teacher alone."""
    if precision == "student":
        return contextlib.nullcontext()
    if precision == "fp32":
        return torch.autocast(device_type, enabled=False)
    return torch.autocast(device_type, dtype=_TEACHER_AUTOCAST_DTYPES[precision])


def locate_teacher(results_root: str, dataset_name: str, plans_name: str, configuration: str,
                   fold: int | str) -> TeacherSource:
    explicit = os.environ.get(TEACHER_ENV)
    if explicit:
        folder = Path(explicit)
        fold_folder = folder if folder.name.startswith("fold_") else folder / f"fold_{fold}"
    else:
        fold_folder = (Path(results_root) / dataset_name /
                       f"{DEFAULT_TEACHER_TRAINER}__{plans_name}__{configuration}" / f"fold_{fold}")
    return TeacherSource(fold_folder, _teacher_checkpoint(fold_folder, dataset_name, plans_name, configuration, fold))


def _teacher_checkpoint(fold_folder: Path, dataset_name: str, plans_name: str, configuration: str,
                        fold: int | str) -> Path:
    named = os.environ.get(TEACHER_CHECKPOINT_ENV)
    if named:
        if (fold_folder / named).is_file():
            return fold_folder / named
        raise TeacherError(f"No teacher checkpoint {fold_folder / named} ({TEACHER_CHECKPOINT_ENV}={named}). "
                           f"Check the file name, or unset {TEACHER_CHECKPOINT_ENV} to use checkpoint_final.pth.")
    if (fold_folder / "checkpoint_final.pth").is_file():
        return fold_folder / "checkpoint_final.pth"
    if (fold_folder / "checkpoint_best.pth").is_file():
        warnings.warn(f"Teacher {fold_folder} has no checkpoint_final.pth (training unfinished?); "
                      f"using checkpoint_best.pth.")
        return fold_folder / "checkpoint_best.pth"
    raise TeacherError(
        f"No teacher checkpoint in {fold_folder} (looked for checkpoint_final.pth and checkpoint_best.pth). "
        f"Train the teacher first: `nnUNetv2_train {dataset_name} {configuration} {fold} -p {plans_name}`, "
        f"or set {TEACHER_ENV} to the folder of another trained nnU-Net model.")


def open_teacher(source: TeacherSource) -> Teacher:
    for required in ("plans.json", "dataset.json"):
        if not (source.model_folder / required).is_file():
            raise TeacherError(f"Teacher folder {source.model_folder} has no {required}; it is not a trained "
                               f"nnU-Net model folder. Point {TEACHER_ENV} to one (the folder holding fold_X/).")
    plans_manager = PlansManager(load_json(str(source.model_folder / "plans.json")))
    checkpoint = load_checkpoint_weights_only(source.checkpoint)
    return Teacher(source, plans_manager, plans_manager.get_configuration(checkpoint["init_args"]["configuration"]),
                   load_json(str(source.model_folder / "dataset.json")), checkpoint["trainer_name"],
                   checkpoint["network_weights"])


# ---------------------------------------------------------------------------------------
# Compatibility with the student's run. Each check returns problems as sentences.

def label_problems(teacher: Teacher, student_dataset_json: dict) -> list[str]:
    keys = ("labels", "regions_class_order")
    theirs = {k: teacher.dataset_json.get(k) for k in keys}
    ours = {k: student_dataset_json.get(k) for k in keys}
    if theirs == ours:
        return []
    kinds = _label_kind(theirs["labels"]), _label_kind(ours["labels"])
    what = f"the teacher predicts {kinds[0]}, the student {kinds[1]}" if kinds[0] != kinds[1] else \
        f"the teacher's {kinds[0]} are not the student's"
    return [f"label set differs ({what}): teacher {theirs}, student {ours}. The teacher must be trained on the "
            f"same labels (or regions); retrain it on this dataset or convert the dataset with matching labels"]


def _label_kind(labels: dict | None) -> str:
    # nnU-Net reads a label whose value is a list as a region (sigmoid heads).
    regions = any(isinstance(v, (list, tuple)) for v in (labels or {}).values())
    return "regions (sigmoid heads)" if regions else "labels (softmax)"


def channel_problems(teacher: Teacher, student_dataset_json: dict) -> list[str]:
    t, s = len(teacher.dataset_json["channel_names"]), len(student_dataset_json["channel_names"])
    if t == s:
        return []
    return [f"the teacher takes {t} input channel(s), the student's dataset has {s}; use a teacher trained on "
            f"the same imaging modalities"]


def preprocessing_problems(teacher: Teacher, student_plans: PlansManager,
                           student_configuration: ConfigurationManager) -> list[str]:
    """Compares what preprocessing does, not its name: equal data identifiers from two datasets
    can still differ, and ResEnc plans name identical preprocessing differently."""
    tc, sc = teacher.configuration_manager, student_configuration
    pairs = {
        "spacing": (tc.spacing, sc.spacing),
        "normalization_schemes": (tc.normalization_schemes, sc.normalization_schemes),
        "use_mask_for_norm": (tc.use_mask_for_norm, sc.use_mask_for_norm),
        "transpose_forward": (teacher.plans_manager.transpose_forward, student_plans.transpose_forward),
        "foreground_intensity_properties_per_channel": (
            teacher.plans_manager.foreground_intensity_properties_per_channel,
            student_plans.foreground_intensity_properties_per_channel),
    }
    differing = [f"{name} (teacher {t}, student {s})" for name, (t, s) in pairs.items() if not _same(t, s)]
    if not differing:
        return []
    return [f"preprocessing differs (teacher data '{tc.data_identifier}', student data '{sc.data_identifier}'): "
            f"{'; '.join(differing)}. Train the student with the teacher's plans (-p "
            f"{teacher.plans_manager.plans_name}) or a teacher preprocessed like the student"]


def _same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    try:
        return bool(np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-5))
    except (TypeError, ValueError):
        return a == b


def patch_problems(teacher: Teacher, student_patch_size) -> list[str]:
    strides = np.prod(np.array(teacher.configuration_manager.network_arch_init_kwargs["strides"]), axis=0)
    if all(p % s == 0 for p, s in zip(student_patch_size, strides)):
        return []
    return [f"the student's patch {list(student_patch_size)} is not divisible by the teacher's total stride "
            f"{strides.tolist()}; use plans whose patch size is a multiple of it (e.g. the teacher's plans)"]


def leak_problems(teacher_training_cases: set[str] | None, student_validation_cases: set[str]) -> list[str]:
    leaked = sorted(student_validation_cases & (teacher_training_cases or set()))
    if not leaked:
        return []
    shown = ", ".join(leaked[:5]) + (" ..." if len(leaked) > 5 else "")
    return [f"the teacher was trained on {len(leaked)} of the student's validation cases ({shown}); its "
            f"knowledge of them would inflate every validation metric. Use the teacher of the same fold, or set "
            f"{ALLOW_LEAK_ENV}=1 to accept the leak knowingly"]


def leak_allowed() -> bool:
    return os.environ.get(ALLOW_LEAK_ENV, "0").lower() in ("1", "true", "yes")


def teacher_training_cases(teacher: Teacher, preprocessed_root: str | None,
                           warn: Callable[[str], None] = warnings.warn) -> set[str] | None:
    """The cases the teacher's fold trained on, from its dataset's splits; None when unknown, in
    which case `warn` is told that the leak check cannot be done, why, and how to make it possible."""
    cases, reason = _training_cases_or_reason(teacher, preprocessed_root)
    if cases is None:
        warn(f"The teacher leak check was not done: the teacher's training cases are unknown because "
             f"{reason}. A teacher trained on any of the student's validation cases inflates every validation "
             f"metric. To check it, set nnUNet_preprocessed to where the teacher's dataset and its "
             f"splits_final.json are preprocessed, and point {TEACHER_ENV} to a fold_<number> or fold_all folder")
    return cases


def _training_cases_or_reason(teacher: Teacher, preprocessed_root: str | None) -> tuple[set[str] | None, str]:
    fold = teacher.source.fold_folder.name.removeprefix("fold_")
    if preprocessed_root is None:
        return None, "nnUNet_preprocessed is not set"
    dataset_folder = Path(preprocessed_root) / teacher.plans_manager.dataset_name
    if fold == "all":  # trained on every preprocessed case
        data_folder = dataset_folder / teacher.configuration_manager.data_identifier
        cases = {p.name.split(".")[0] for p in data_folder.glob("*") if not p.name.endswith(".pkl")}
        return (cases, "") if cases else (None, f"{data_folder} holds no preprocessed cases")
    if not fold.isdigit():
        return None, f"the teacher folder {teacher.source.fold_folder.name} is neither fold_<number> nor fold_all"
    splits_file = dataset_folder / "splits_final.json"
    if not splits_file.is_file():
        return None, f"{splits_file} does not exist"
    splits = load_json(str(splits_file))
    if int(fold) >= len(splits):
        return None, f"{splits_file} has {len(splits)} folds, none for fold {fold}"
    return set(splits[int(fold)]["train"]), ""
