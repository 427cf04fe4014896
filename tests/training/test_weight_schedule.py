"""The distillation weight's schedule inside nnU-Net's training: the factor at nnU-Net's current epoch scales the
step's distillation terms, and a run resumed with --c continues on its schedule or is refused on another one.
Tiny nnU-Net plans, a random teacher, the CPU."""

import pytest
import torch
from offline_hlfd import CPU, quiet_trainer, tiny_plans, train_epoch

from nnunetv2_hlfd.distillation.config import DistillationConfigError, hlfd_config
from nnunetv2_hlfd.distillation.schedule import weight_factor
from nnunetv2_hlfd.speed.offline_trainers import random_teacher, synthetic_batch


@pytest.fixture(scope="module")
def setting():
    plans, dataset_json = tiny_plans()
    return plans, dataset_json, random_teacher(plans, "2d", dataset_json, CPU)


def factors(trainer, epochs) -> list[float]:
    along = []
    for epoch in epochs:
        trainer.current_epoch = epoch
        along.append(trainer.distillation_weight_factor)
    return along


@pytest.mark.parametrize(
    "trainer_name, epochs, expected",
    [
        ("nnUNetTrainerHLFD", [0, 10, 999], [1.0, 1.0, 1.0]),
        ("nnUNetTrainerHLFD_WarmupEMA", [0, 25, 100, 999], [0.0, 0.25, 1.0, 1.0]),
        ("nnUNetTrainerHLFD_Cosine", [0, 500, 1000], [1.0, 0.5, 0.0]),
    ],
    ids=["constant", "warm-up", "cosine"],
)
def test_each_trainers_weight_factor_at_nnunets_epochs(setting, trainer_name, epochs, expected):
    trainer = quiet_trainer(trainer_name, *setting)
    assert trainer.num_epochs == 1000  # nnU-Net's length: the cosine runs over it
    assert factors(trainer, epochs) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("epoch", [0, 1, 3])
def test_the_step_weights_its_terms_by_the_factor_at_the_current_epoch(setting, epoch):
    trainer = quiet_trainer(hlfd_config(weight_schedule="warmup", warmup_epochs=2), *setting)
    trainer.current_epoch = epoch
    losses = []
    compute = trainer.distiller.loss
    trainer.distiller.loss = lambda *args, **kwargs: losses.append(compute(*args, **kwargs)) or losses[-1]
    trainer.train_step(synthetic_batch(trainer))
    (loss,) = losses
    unscaled = trainer.distiller.weighted_sum(loss.values).item()
    assert unscaled > 0 and loss.total.item() == pytest.approx(min(epoch / 2, 1.0) * unscaled, rel=1e-6, abs=0)


def test_a_resumed_run_continues_on_the_schedule_it_started_with(setting, tmp_path):
    def cosine_over_six_epochs(seed=0):
        trainer = quiet_trainer("nnUNetTrainerHLFD_Cosine", *setting, seed=seed)
        trainer.num_epochs = 6
        return trainer

    uninterrupted, interrupted = cosine_over_six_epochs(), cosine_over_six_epochs()
    for _ in range(2):
        train_epoch(interrupted, steps=1)
        interrupted.save_checkpoint(str(tmp_path / "checkpoint_latest.pth"))  # as on_epoch_end writes it
        interrupted.current_epoch += 1
    resumed = cosine_over_six_epochs(seed=1)
    resumed.load_checkpoint(tmp_path / "checkpoint_latest.pth")
    assert resumed.current_epoch == 2
    expected = [weight_factor("cosine", 0, epoch, 6) for epoch in range(2, 6)]
    assert factors(resumed, range(2, 6)) == factors(uninterrupted, range(2, 6)) == expected
    assert 0 < expected[-1] < expected[0] < 1


@pytest.mark.parametrize(
    "resumed_with, difference",
    [
        ("nnUNetTrainerHLFD", "weight_schedule 'cosine' there, 'constant' here"),
        ("nnUNetTrainerHLFD_Cosine", "num_epochs 6 there, 1000 here"),
    ],
    ids=["another schedule", "another length"],
)
def test_resuming_on_another_schedule_is_refused_naming_the_difference(setting, tmp_path, resumed_with, difference):
    trainer = quiet_trainer("nnUNetTrainerHLFD_Cosine", *setting)
    trainer.num_epochs = 6
    train_epoch(trainer, steps=1)
    trainer.save_checkpoint(str(tmp_path / "checkpoint_latest.pth"))
    other = quiet_trainer(resumed_with, *setting)
    with pytest.raises(DistillationConfigError, match=difference) as refusal:
        other.load_checkpoint(tmp_path / "checkpoint_latest.pth")
    assert "Resume with the trainer (and training length) the run started with" in str(refusal.value)
    assert other.current_epoch == 0


def test_a_checkpoint_from_before_schedules_resumes_as_the_constant_weight(setting, tmp_path):
    """Runs started before a method could declare a schedule trained on the constant weight without average."""
    trainer = quiet_trainer("nnUNetTrainerHLFD", *setting)
    train_epoch(trainer, steps=1)
    trainer.save_checkpoint(str(tmp_path / "checkpoint_latest.pth"))
    checkpoint = torch.load(tmp_path / "checkpoint_latest.pth", weights_only=False)
    del checkpoint["distillation"]["schedule"]
    torch.save(checkpoint, tmp_path / "checkpoint_latest.pth")
    quiet_trainer("nnUNetTrainerHLFD", *setting).load_checkpoint(tmp_path / "checkpoint_latest.pth")
    with pytest.raises(DistillationConfigError, match="weight_schedule 'constant' there, 'cosine' here"):
        quiet_trainer("nnUNetTrainerHLFD_Cosine", *setting).load_checkpoint(tmp_path / "checkpoint_latest.pth")
