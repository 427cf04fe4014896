"""A run killed at any moment resumes with --c from its last good checkpoint, adapters and
term logs intact; a checkpoint write that dies midway never replaces the last good one."""

import os
import signal
import subprocess
import time

import pytest
import torch
from nnunet_runs import DATASET_ID, run_command
from offline_hlfd import CPU, hlfd_trainer, quiet_trainer, tiny_plans

from nnunetv2_hlfd.speed.offline_trainers import random_teacher, synthetic_batch
from nnunetv2_hlfd.training.student_trainer import atomic_torch_save

pytestmark = pytest.mark.integration
EPOCHS = 6


def test_killed_training_resumes_from_its_last_checkpoint(nnunet_dirs, teacher_2d, tmp_path):
    env = {
        **os.environ,
        "nnUNet_results": str(tmp_path),
        "HLFD_TEACHER": str(teacher_2d.parent),
        "HLFD_TEST_EPOCHS": str(EPOCHS),
        "HLFD_TEST_SAVE_EVERY": "1",
    }
    command = ["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", "nnUNetTrainerHLFD_tiny", "-device", "cpu"]
    fold = tmp_path / f"Dataset{DATASET_ID}_SyntheticKidney" / "nnUNetTrainerHLFD_tiny__nnUNetPlans__2d" / "fold_0"
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not (fold / "checkpoint_latest.pth").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (fold / "checkpoint_final.pth").exists(), "the run finished before it could be killed"
    interrupted = torch.load(fold / "checkpoint_latest.pth", weights_only=False)

    resumed = run_command(
        command + ["--c"],
        env={k: env[k] for k in ("nnUNet_results", "HLFD_TEACHER", "HLFD_TEST_EPOCHS", "HLFD_TEST_SAVE_EVERY")},
    )
    first_resumed_epoch = interrupted["current_epoch"]
    assert f"Epoch {first_resumed_epoch}\n" in resumed.stdout and "Epoch 0\n" not in resumed.stdout
    final = torch.load(fold / "checkpoint_final.pth", weights_only=False)
    for term in ("UFD", "IFD", "UPD", "IPD"):
        curve = final["logging"][f"distill_{term}"]
        assert len(curve) == EPOCHS
        assert curve[:first_resumed_epoch] == interrupted["logging"][f"distill_{term}"][:first_resumed_epoch]
    assert final["distillation"]["geometry"] == interrupted["distillation"]["geometry"]


class _FailsWhilePickled:
    def __reduce__(self):
        raise OSError("disk full")


def test_failed_checkpoint_write_keeps_the_last_good_checkpoint(tmp_path):
    target = tmp_path / "checkpoint_latest.pth"
    atomic_torch_save({"epoch": 1}, target)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save({"epoch": 2, "payload": _FailsWhilePickled()}, target)
    assert torch.load(target) == {"epoch": 1}
    assert list(tmp_path.iterdir()) == [target]


def test_resuming_restores_the_adapters_and_their_optimiser_state(tmp_path):
    """What --c reads back: the adapters' weights and their SGD momentum, as the run left them."""
    plans, dataset_json = tiny_plans()
    teacher = random_teacher(plans, "2d", dataset_json, CPU)
    build = lambda: hlfd_trainer(plans, dataset_json, teacher)
    trained = build()
    for seed in range(2):
        trained.train_step(synthetic_batch(trained, seed))
    trained.save_checkpoint(str(tmp_path / "checkpoint_latest.pth"))

    resumed = build()
    resumed.load_checkpoint(tmp_path / "checkpoint_latest.pth")  # a Path, as users pass it
    trained_adapters, resumed_adapters = trained.distiller.state_dict(), resumed.distiller.state_dict()
    assert trained_adapters.keys() == resumed_adapters.keys() and trained_adapters
    assert all(torch.equal(trained_adapters[k], resumed_adapters[k]) for k in trained_adapters)
    momentum = lambda trainer: [trainer.optimizer.state[p]["momentum_buffer"] for p in trainer.distiller.parameters()]
    assert all(torch.equal(a, b) and a.abs().sum() > 0 for a, b in zip(momentum(trained), momentum(resumed)))


def test_resuming_against_another_teacher_is_refused_naming_both(tmp_path):
    from nnunetv2_hlfd.training.teacher import TeacherError

    plans, dataset_json = tiny_plans()
    original, other = (random_teacher(plans, "2d", dataset_json, CPU) for _ in range(2))  # same stages, other weights
    build = lambda teacher: hlfd_trainer(plans, dataset_json, teacher)
    trained = build(original)
    trained.train_step(synthetic_batch(trained))
    trained.save_checkpoint(str(tmp_path / "checkpoint_latest.pth"))

    build(original).load_checkpoint(tmp_path / "checkpoint_latest.pth")  # the same teacher resumes
    with pytest.raises(TeacherError, match="not the one this run started with") as refusal:
        build(other).load_checkpoint(tmp_path / "checkpoint_latest.pth")
    assert original.weights_sha256[:16] in str(refusal.value) and other.weights_sha256[:16] in str(refusal.value)


def test_a_checkpoint_loaded_into_a_dict_is_refused_naming_what_to_pass(tmp_path):
    """nnU-Net's loader restores the student from a file only: a dict is refused before anything is loaded."""
    from nnunetv2_hlfd.training.safe_checkpoint import CheckpointLoadError

    plans, dataset_json = tiny_plans()
    teacher = random_teacher(plans, "2d", dataset_json, CPU)
    trained = quiet_trainer("nnUNetTrainerHLFD", plans, dataset_json, teacher)
    trained.train_step(synthetic_batch(trained))
    trained.save_checkpoint(str(tmp_path / "checkpoint_latest.pth"))
    resumed = quiet_trainer("nnUNetTrainerHLFD", plans, dataset_json, teacher, seed=1)
    before = {k: v.clone() for k, v in resumed.unwrapped_network.state_dict().items()}
    with pytest.raises(CheckpointLoadError, match="takes a checkpoint's file name, not a dict.*Pass the path"):
        resumed.load_checkpoint(torch.load(tmp_path / "checkpoint_latest.pth", weights_only=False))
    assert all(torch.equal(v, resumed.unwrapped_network.state_dict()[k]) for k, v in before.items())
    assert resumed.current_epoch == 0
