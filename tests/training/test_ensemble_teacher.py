"""An ensemble teacher: the terms see the members' averaged probabilities and averaged attention maps,
every member is checked and named, a cross-validation ensemble is refused for a fold student, and the
cheaper rotation runs one member per step."""

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from nnunet_runs import DATASET_ID, DATASET_NAME, with_own_log
from offline_hlfd import tiny_plans

from nnunetv2_hlfd.distillation.config import DistillationConfig, hlfd_config
from nnunetv2_hlfd.distillation.functional import attention_map
from nnunetv2_hlfd.distillation.maps import UNetMaps
from nnunetv2_hlfd.speed.offline_trainers import initialized_trainer, method_trainer, random_teacher, synthetic_batch
from nnunetv2_hlfd.training.teacher import TeacherError
from nnunetv2_hlfd.training.teacher_checks import stage_problems
from nnunetv2_hlfd.training.teacher_ensemble import (
    attention_averaging_stack,
    averaged_probability_logits,
    ensemble_maps,
)

CPU = torch.device("cpu")


def random_logits(members: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [4 * torch.randn(2, 3, 5, 6, generator=generator) for _ in range(members)]


def test_label_logits_are_those_of_the_averaged_softmax_and_t_tempers_that_average():
    logits = random_logits(3)
    mean_probabilities = torch.stack([z.softmax(1) for z in logits]).mean(0)
    ensemble = averaged_probability_logits(logits, regions=False)
    torch.testing.assert_close(ensemble.softmax(1), mean_probabilities)
    tempered = mean_probabilities ** (1 / 4)
    torch.testing.assert_close((ensemble / 4).softmax(1), tempered / tempered.sum(1, keepdim=True))


def test_region_logits_are_those_of_the_averaged_sigmoid_even_where_members_are_certain():
    logits = random_logits(2, seed=1)
    logits[0][0, 0, 0, 0], logits[1][0, 0, 0, 0] = 60.0, 80.0  # sigmoid 1 - 1e-26: float32's 1.0
    ensemble = averaged_probability_logits(logits, regions=True)
    torch.testing.assert_close(ensemble.sigmoid(), torch.stack([z.sigmoid() for z in logits]).mean(0))
    assert torch.isfinite(ensemble).all() and ensemble[0, 0, 0, 0] > 59


def test_attention_of_the_stack_is_the_mean_of_the_members_attention_for_any_widths():
    generator = torch.Generator().manual_seed(2)
    members = [torch.randn(2, c, 6, 7, generator=generator) * scale for c, scale in ((8, 1.0), (32, 5.0), (3, 0.1))]
    stacked = attention_averaging_stack(members, attention_p=4)
    mean_attention = torch.stack([attention_map(m, 4) for m in members]).mean(0)
    torch.testing.assert_close(attention_map(stacked, 4), F.normalize(mean_attention, dim=1))
    assert stacked.shape[1] == 8 + 32 + 3


def test_one_member_is_handed_over_unchanged():
    maps = UNetMaps([torch.randn(1, 4, 8, 8)], [torch.randn(1, 3, 8, 8)])
    assert ensemble_maps([maps], regions=False, attention_p=4) is maps


def test_members_that_downsample_differently_are_refused_naming_them():
    def member(folder, strides):
        return SimpleNamespace(
            source=SimpleNamespace(fold_folder=Path(folder)),
            configuration_manager=SimpleNamespace(network_arch_init_kwargs={"strides": strides}),
        )

    assert stage_problems([member("a", [[1, 1], [2, 2]]), member("b", [[1, 1], [2, 2]])]) == []
    problems = stage_problems([member("a", [[1, 1], [2, 2]]), member("b", [[1, 1], [2, 2], [2, 2]])])
    assert len(problems) == 1 and "a: [[1, 1], [2, 2]]" in problems[0] and "downsample alike" in problems[0]


@pytest.fixture(scope="module", name="tiny_plans")
def tiny_plans_fixture():
    return tiny_plans()


def ensemble_trainer(tiny_plans, method, members: int = 3):
    plans, dataset_json = tiny_plans
    teachers = [random_teacher(plans, "2d", dataset_json, CPU) for _ in range(members)]
    return initialized_trainer(method_trainer(method, "Tested"), plans, "2d", dataset_json, CPU, teachers)


def test_every_member_runs_every_step_and_the_step_is_finite(tiny_plans):
    trainer = ensemble_trainer(tiny_plans, hlfd_config())
    calls = []
    for member in trainer.teachers:
        member.network.encoder.register_forward_hook(lambda *_, m=member: calls.append(m))
    batch = synthetic_batch(trainer)
    out = trainer.train_step(batch)
    assert calls == trainer.teachers and torch.isfinite(out["distillation_terms"]).all()
    channels = [m.network.encoder.output_channels for m in trainer.teachers]
    assert list(trainer.distiller.geometry.teacher.encoder_channels) == [sum(c) for c in zip(*channels)]


def test_rotation_runs_one_member_per_step_in_turn(tiny_plans):
    trainer = ensemble_trainer(tiny_plans, hlfd_config())
    trainer.teacher_rotation = True
    calls = []
    for member in trainer.teachers:
        member.network.encoder.register_forward_hook(lambda *_, m=member: calls.append(m))
    batch = synthetic_batch(trainer)
    for _ in range(4):
        trainer.train_step(batch)
    assert calls == [trainer.teachers[i % 3] for i in range(4)]


def test_a_resumed_rotation_goes_on_with_the_next_member(tiny_plans, tmp_path):
    trainer = ensemble_trainer(tiny_plans, hlfd_config())
    trainer.teacher_rotation = True
    batch = synthetic_batch(trainer)
    for _ in range(2):
        trainer.train_step(batch)
    trainer.save_checkpoint(str(tmp_path / "checkpoint_latest.pth"))
    resumed = ensemble_trainer(tiny_plans, hlfd_config())
    resumed.teachers, resumed.teacher_rotation = trainer.teachers, True  # the same members
    resumed.load_checkpoint(str(tmp_path / "checkpoint_latest.pth"))
    calls = []
    for member in resumed.teachers:
        member.network.encoder.register_forward_hook(lambda *_, m=member: calls.append(m))
    resumed.train_step(batch)
    assert calls == [resumed.teachers[2]]


def test_method_reading_raw_teacher_features_refuses_an_ensemble(tiny_plans):
    with pytest.raises(TeacherError, match=r"\['FitNets'\] read the teacher's raw features"):
        ensemble_trainer(tiny_plans, DistillationConfig(weights={"FitNets": 1.0}), members=2)


# ---- through nnU-Net's own trainer and results folders ---------------------------------------------
@pytest.fixture
def teacher_folds(nnunet_dirs, teacher_2d: Path, tmp_path: Path, monkeypatch) -> Path:
    """A trainer folder with folds 0 and 1 (copies of the trained teacher), each with the validation
    outputs of its fold, as nnU-Net leaves them; used through HLFD_TEACHER and HLFD_TEACHER_FOLDS."""
    folder = tmp_path / "nnUNetTrainer__nnUNetPlans__2d"
    splits = json.loads((nnunet_dirs["nnUNet_preprocessed"] / DATASET_NAME / "splits_final.json").read_text())
    for fold in (0, 1):
        (folder / f"fold_{fold}" / "validation").mkdir(parents=True)
        shutil.copy(teacher_2d / "checkpoint_final.pth", folder / f"fold_{fold}")
        for case in splits[fold]["val"]:
            (folder / f"fold_{fold}" / "validation" / f"{case}.nii.gz").touch()
    for name in ("plans.json", "dataset.json"):
        shutil.copy(teacher_2d.parent / name, folder / name)
    monkeypatch.setenv("HLFD_TEACHER", str(folder))
    monkeypatch.setenv("HLFD_TEACHER_FOLDS", "0,1")
    return folder


def hlfd_trainer(fold):
    from nnunetv2.run.run_training import get_trainer_from_args

    return with_own_log(get_trainer_from_args(str(DATASET_ID), "2d", fold, "nnUNetTrainerHLFD_tiny", device=CPU))


@pytest.mark.integration
def test_deployment_student_distils_the_folds_each_named_in_the_log(teacher_folds):
    trainer = hlfd_trainer("all")
    trainer.initialize()
    log = Path(trainer.log_file).read_text()
    assert "Ensemble teacher of 2 members" in log
    assert all(str(teacher_folds / f"fold_{f}" / "checkpoint_final.pth") in log for f in (0, 1))


@pytest.mark.integration
def test_fold_ensemble_is_refused_for_a_cross_validation_student(teacher_folds):
    with pytest.raises(TeacherError, match="fold_1 was trained on 2 of the student's validation cases") as refusal:
        hlfd_trainer(0).initialize()
    assert f"nnUNetv2_train {DATASET_NAME} 2d all -tr nnUNetTrainerHLFD_tiny" in str(refusal.value)


@pytest.mark.integration
def test_fold_ensemble_for_a_fold_student_trains_with_the_override_and_a_warning(teacher_folds, monkeypatch):
    monkeypatch.setenv("HLFD_ALLOW_TEACHER_LEAK", "yes")
    trainer = hlfd_trainer(0)
    trainer.initialize()
    assert len(trainer.teachers) == 2
    assert "WARNING: the teacher" in Path(trainer.log_file).read_text()


@pytest.mark.integration
def test_each_member_is_checked_as_a_single_teacher_is(teacher_folds, monkeypatch):
    other = teacher_folds.parent / "other" / "nnUNetTrainer__nnUNetPlans__2d"
    shutil.copytree(teacher_folds, other)
    dataset = json.loads((other / "dataset.json").read_text())
    dataset["labels"]["cyst"] = 3
    (other / "dataset.json").write_text(json.dumps(dataset))
    monkeypatch.setenv("HLFD_TEACHER", os.pathsep.join([str(teacher_folds), str(other)]))
    with pytest.raises(TeacherError, match="label set differs") as refusal:
        hlfd_trainer("all").initialize()
    message = str(refusal.value)
    assert f"{other / 'fold_0'}: label set differs" in message and f"{other / 'fold_1'}: label set differs" in message
    assert f"{teacher_folds / 'fold_0'}: label set differs" not in message
