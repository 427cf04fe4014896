"""HLFD end to end on a tiny generated dataset: nnUNetv2_train, --c, --val-free prediction
with nnUNetv2_predict, and the student baseline (3d_fullres: test_dataset_variants.py)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from figure_checks import coloured_fraction, read_png
from nnunet_runs import DATASET_ID, run_command, train_in_process
from student_prediction import assert_predicts_without_the_teacher

from nnunetv2_hlfd.training.student import ResNetStudentUNet

pytestmark = pytest.mark.integration
TERMS = ["UFD", "IFD", "UPD", "IPD"]
HLFD_2D = "nnUNetTrainerHLFD_tiny__nnUNetPlans__2d"


def train_cli(configuration: str, trainer: str, *extra: str, epochs: int = 1):
    return run_command(
        ["nnUNetv2_train", str(DATASET_ID), configuration, "0", "-tr", trainer, "-device", "cpu", *extra],
        env={"HLFD_TEST_EPOCHS": str(epochs)},
    )


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.fixture(scope="module")
def hlfd_2d(nnunet_dirs, teacher_2d, tmp_path_factory) -> dict:
    """One epoch through nnUNetv2_train, a snapshot of its checkpoint, then --c to a second epoch."""
    fold = nnunet_dirs["nnUNet_results"] / f"Dataset{DATASET_ID}_SyntheticKidney" / HLFD_2D / "fold_0"
    train_cli("2d", "nnUNetTrainerHLFD_tiny", epochs=1)
    snapshot = tmp_path_factory.mktemp("snapshot") / "after_epoch_1.pth"
    shutil.copy(fold / "checkpoint_final.pth", snapshot)
    resumed = train_cli("2d", "nnUNetTrainerHLFD_tiny", "--c", epochs=2)
    return {"fold": fold, "snapshot": snapshot, "resumed_output": resumed.stdout}


def test_student_checkpoint_holds_only_the_student_in_network_weights(hlfd_2d):
    checkpoint = load(hlfd_2d["fold"] / "checkpoint_final.pth")
    plans = json.loads((hlfd_2d["fold"].parent / "plans.json").read_text())
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_hlfd.training.student import build_student

    student = build_student(PlansManager(plans).get_configuration("2d"), 1, 3)
    assert isinstance(student, ResNetStudentUNet)
    assert checkpoint["network_weights"].keys() == student.state_dict().keys()
    assert any(k.startswith("terms.UPD.") for k in checkpoint["distillation"]["state_dict"])


def test_checkpoint_geometry_knows_the_patch_and_so_the_bottleneck_size(hlfd_2d):
    from nnunetv2_hlfd.distillation.maps import DistillationGeometry

    checkpoint = load(hlfd_2d["fold"] / "checkpoint_final.pth")
    patch = json.loads((hlfd_2d["fold"].parent / "plans.json").read_text())["configurations"]["2d"]["patch_size"]
    geometry = DistillationGeometry.from_dict(checkpoint["distillation"]["geometry"])
    assert geometry.patch_size == tuple(patch)
    assert geometry.teacher_bottleneck_size is not None and all(s >= 1 for s in geometry.teacher_bottleneck_size)


def test_every_term_is_logged_each_epoch_and_plotted(hlfd_2d):
    logging = load(hlfd_2d["fold"] / "checkpoint_final.pth")["logging"]
    for term in TERMS:
        assert len(logging[f"distill_{term}"]) == 2 and all(np.isfinite(logging[f"distill_{term}"]))
    log_text = "".join(p.read_text() for p in hlfd_2d["fold"].glob("training_log_*.txt"))
    assert "distillation terms (epoch mean): UFD" in log_text
    progress = read_png(hlfd_2d["fold"] / "progress.png")
    # nnU-Net's plot is 30 x 54 inches at 100 dpi; the terms' panel, 30 x 12 inches, goes below it
    assert progress.shape[:2] == (5400 + 1200, 3000)
    assert coloured_fraction(progress[5400:]) > 0.002  # the terms' lines, not an empty panel


def test_training_log_states_student_to_teacher_cost_ratios(hlfd_2d):
    log_text = "".join(p.read_text() for p in hlfd_2d["fold"].glob("training_log_*.txt"))
    assert "Reference: the teacher (nnUNetTrainer). Student / teacher cost: parameters" in log_text
    assert "multiply-adds per patch" in log_text


def test_resume_with_c_continues_from_the_checkpoint_instead_of_restarting(hlfd_2d):
    assert "Epoch 1" in hlfd_2d["resumed_output"] and "Epoch 0\n" not in hlfd_2d["resumed_output"]
    snapshot_logging = load(hlfd_2d["snapshot"])["logging"]
    final_logging = load(hlfd_2d["fold"] / "checkpoint_final.pth")["logging"]
    assert final_logging["distill_UFD"][0] == snapshot_logging["distill_UFD"][0]


def test_load_checkpoint_restores_trained_adapters(hlfd_2d):
    from nnunetv2.run.run_training import get_trainer_from_args

    snapshot = load(hlfd_2d["snapshot"])
    trainer = get_trainer_from_args(str(DATASET_ID), "2d", 0, "nnUNetTrainerHLFD_tiny", device=torch.device("cpu"))
    trainer.load_checkpoint(str(hlfd_2d["snapshot"]))
    restored = trainer.distiller.state_dict()
    for key, value in snapshot["distillation"]["state_dict"].items():
        assert torch.equal(restored[key].cpu(), value), key
    assert "terms.UPD.student_projection.weight" in restored  # the random initialisation was replaced
    assert trainer.teacher is None  # restoring needs no teacher


def test_nnunetv2_predict_runs_the_student_without_the_teacher(hlfd_2d, nnunet_dirs, teacher_2d, tmp_path):
    images = nnunet_dirs["nnUNet_raw"] / f"Dataset{DATASET_ID}_SyntheticKidney" / "imagesTr"
    assert_predicts_without_the_teacher(images, teacher_2d, tmp_path, "nnUNetTrainerHLFD_tiny")


def test_student_baseline_trains_the_same_student_without_a_teacher(nnunet_dirs, teacher_2d):
    trainer = train_in_process("nnUNetTrainerStudent_tiny", "2d")
    assert isinstance(trainer.network, ResNetStudentUNet)
    log_text = Path(trainer.log_file).read_text()
    assert "Reference: this plan's nnU-Net network. Student / teacher cost" in log_text
    assert "Student: StudentSize(width_factor=0.5, budget=0.35): widths " in log_text


def test_teacher_parameters_get_no_gradient_and_do_not_change(nnunet_dirs, teacher_2d):
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args(str(DATASET_ID), "2d", 0, "nnUNetTrainerHLFD_tiny", device=torch.device("cpu"))
    trainer.on_train_start()
    before = {k: v.clone() for k, v in trainer.teacher.network.state_dict().items()}
    student_before = [p.clone() for p in trainer.network.parameters()]
    adapters_before = [p.clone() for p in trainer.distiller.parameters()]
    trainer.train_step(next(trainer.dataloader_train))
    assert all(p.grad is None for p in trainer.teacher.network.parameters())
    assert all(torch.equal(v, before[k]) for k, v in trainer.teacher.network.state_dict().items())
    assert not all(torch.equal(a, b) for a, b in zip(student_before, trainer.network.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(adapters_before, trainer.distiller.parameters()))
    assert all(
        id(p) not in {id(q) for q in trainer.teacher.network.parameters()}
        for group in trainer.optimizer.param_groups
        for p in group["params"]
    )
