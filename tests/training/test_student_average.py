"""The exponential moving average of the student's weights (DistillationConfig.student_ema_decay): updated after
each step, scored by nnU-Net's validation, written as the checkpoint's network_weights that nnUNetv2_predict
loads, and continued by --c exactly as an uninterrupted run. Tiny nnU-Net plans, a random teacher, the CPU."""

import json

import pytest
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from offline_hlfd import CPU, quiet_trainer, tiny_plans, train_epoch

from nnunetv2_hlfd.distillation.config import DistillationConfigError, hlfd_config
from nnunetv2_hlfd.speed.offline_trainers import random_teacher, synthetic_batch

AVERAGED = hlfd_config(student_ema_decay=0.9)
EPOCHS, STOPPED_AFTER = 4, 2


@pytest.fixture(scope="module")
def setting():
    plans, dataset_json = tiny_plans()
    return plans, dataset_json, random_teacher(plans, "2d", dataset_json, CPU)


def weights(state: dict) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in state.items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and a
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=0, atol=1e-7), name


def assert_differ(a: dict, b: dict) -> None:
    assert any(not torch.equal(a[name], b[name]) for name in a if a[name].is_floating_point())


def test_the_average_follows_the_student_at_its_decay_after_each_step(setting):
    trainer = quiet_trainer(AVERAGED, *setting)
    trainer.train_step(synthetic_batch(trainer, 0))
    first = weights(trainer.unwrapped_network.state_dict())
    assert_same(trainer.student_average.state_dict(), first)  # the first step's student, as it is
    trainer.train_step(synthetic_batch(trainer, 1))
    second = trainer.unwrapped_network.state_dict()
    expected = {name: 0.9 * first[name] + 0.1 * second[name] for name in first if first[name].is_floating_point()}
    average = trainer.student_average.state_dict()
    for name, value in expected.items():
        assert torch.allclose(average[name], value, atol=1e-6), name


def test_no_average_is_kept_unless_the_method_declares_one(setting):
    trainer = quiet_trainer(hlfd_config(), *setting)
    trainer.train_step(synthetic_batch(trainer, 0))
    assert trainer.student_average is None


def test_a_resumed_run_averages_as_the_uninterrupted_run(setting, tmp_path):
    uninterrupted = quiet_trainer(AVERAGED, *setting)
    for _ in range(EPOCHS):
        train_epoch(uninterrupted, steps=1)
        uninterrupted.current_epoch += 1

    interrupted = quiet_trainer(AVERAGED, *setting)
    for _ in range(STOPPED_AFTER):
        train_epoch(interrupted, steps=1)
        interrupted.save_checkpoint(str(tmp_path / "checkpoint_latest.pth"))  # as on_epoch_end writes it
        interrupted.current_epoch += 1
    resumed = quiet_trainer(AVERAGED, *setting, seed=1)  # whatever it starts from, the checkpoint decides
    resumed.load_checkpoint(tmp_path / "checkpoint_latest.pth")
    assert resumed.current_epoch == STOPPED_AFTER
    for _ in range(EPOCHS - STOPPED_AFTER):
        train_epoch(resumed, steps=1)
        resumed.current_epoch += 1

    assert_same(resumed.student_average.state_dict(), uninterrupted.student_average.state_dict())
    assert_same(resumed.unwrapped_network.state_dict(), uninterrupted.unwrapped_network.state_dict())
    assert_differ(resumed.student_average.state_dict(), resumed.unwrapped_network.state_dict())


def test_the_checkpoint_predicts_with_the_average_and_keeps_the_students_own_weights_beside(setting, tmp_path):
    """nnU-Net's predictor (nnUNetv2_predict) loads the checkpoint's network_weights: the average."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    plans, dataset_json, teacher = setting
    trainer = quiet_trainer("nnUNetTrainerHLFD_WarmupEMA", plans, dataset_json, teacher)
    for seed in range(3):
        trainer.train_step(synthetic_batch(trainer, seed))
    model = tmp_path / "nnUNetTrainerHLFD_WarmupEMA__nnUNetPlans__2d"
    (model / "fold_0").mkdir(parents=True)
    (model / "plans.json").write_text(json.dumps(plans))
    (model / "dataset.json").write_text(json.dumps(dataset_json))
    trainer.save_checkpoint(str(model / "fold_0" / "checkpoint_final.pth"))

    predictor = nnUNetPredictor(device=CPU)
    predictor.initialize_from_trained_model_folder(str(model), use_folds=(0,))
    (loaded,) = predictor.list_of_parameters
    assert_same(loaded, trainer.student_average.state_dict())
    assert_differ(loaded, trainer.unwrapped_network.state_dict())
    checkpoint = torch.load(model / "fold_0" / "checkpoint_final.pth", weights_only=False)
    assert_same(
        checkpoint["distillation"]["student_average"]["training_weights"], trainer.unwrapped_network.state_dict()
    )


def test_each_epochs_validation_scores_the_average_and_training_goes_on_with_the_student(setting):
    trainer = quiet_trainer(AVERAGED, *setting)
    train_epoch(trainer)
    own, average = weights(trainer.unwrapped_network.state_dict()), weights(trainer.student_average.state_dict())
    trainer.on_validation_epoch_start()
    assert_same(trainer.unwrapped_network.state_dict(), average)
    with torch.no_grad():
        outputs = [trainer.validation_step(synthetic_batch(trainer, 99))]
    trainer.on_validation_epoch_end(outputs)
    assert_same(trainer.unwrapped_network.state_dict(), own)


def test_the_final_validation_scores_the_average(setting, monkeypatch):
    trainer = quiet_trainer(AVERAGED, *setting)
    train_epoch(trainer)
    own, average = weights(trainer.unwrapped_network.state_dict()), weights(trainer.student_average.state_dict())
    validated = []
    monkeypatch.setattr(
        nnUNetTrainer,
        "perform_actual_validation",
        lambda self, save_probabilities=False: validated.append(weights(self.unwrapped_network.state_dict())),
    )
    trainer.perform_actual_validation()
    assert_same(validated[0], average)
    assert_same(trainer.unwrapped_network.state_dict(), own)


@pytest.mark.parametrize(
    "resumed_with, difference",
    [
        (hlfd_config(), "student_ema_decay 0.9 there, None here"),
        (hlfd_config(student_ema_decay=0.99), "student_ema_decay 0.9 there, 0.99 here"),
    ],
    ids=["without an average", "another decay"],
)
def test_resuming_an_averaged_run_on_other_average_settings_is_refused(setting, tmp_path, resumed_with, difference):
    trainer = quiet_trainer(AVERAGED, *setting)
    train_epoch(trainer)
    trainer.save_checkpoint(str(tmp_path / "checkpoint_latest.pth"))
    other = quiet_trainer(resumed_with, *setting)
    before = weights(other.unwrapped_network.state_dict())
    with pytest.raises(DistillationConfigError, match=difference) as refusal:
        other.load_checkpoint(tmp_path / "checkpoint_latest.pth")
    assert "start a new run without --c" in str(refusal.value)
    assert_same(other.unwrapped_network.state_dict(), before)  # nothing of the checkpoint was loaded
