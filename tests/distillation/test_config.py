"""A method's declaration: the schedule and average settings it takes, and the sentence refusing any other."""

import pytest

from nnunetv2_hlfd.distillation.config import DistillationConfig, DistillationConfigError, hlfd_config
from nnunetv2_hlfd.distillation.engine import check_method
from nnunetv2_hlfd.utilities.environment import UserFacingError


def test_defaults_are_hlfd_as_published_constant_weight_and_no_average():
    config = hlfd_config()
    assert (config.weight_schedule, config.warmup_epochs, config.student_ema_decay) == ("constant", 0, None)
    assert config.setting_problems() == []


@pytest.mark.parametrize(
    "settings",
    [
        {"weight_schedule": "warmup", "warmup_epochs": 100},
        {"weight_schedule": "cosine"},
        {"weight_schedule": "cosine", "warmup_epochs": 10},
        {"student_ema_decay": 0.999},
        {"student_ema_decay": 0.5},
    ],
)
def test_the_schedules_and_averages_a_method_can_declare(settings):
    check_method(hlfd_config(**settings))  # nothing refused


@pytest.mark.parametrize(
    "settings, problem",
    [
        ({"weight_schedule": "linear"}, "weight_schedule='linear' is not one of ('constant', 'warmup', 'cosine')"),
        ({"weight_schedule": "warmup"}, "weight_schedule='warmup' needs warmup_epochs >= 1"),
        ({"weight_schedule": "warmup", "warmup_epochs": -5}, "warmup_epochs=-5 is not a whole number of epochs >= 0"),
        ({"weight_schedule": "warmup", "warmup_epochs": 2.5}, "warmup_epochs=2.5 is not a whole number"),
        ({"warmup_epochs": 10}, "warmup_epochs=10 is given with weight_schedule='constant', which has no warm-up"),
        ({"student_ema_decay": 1.0}, "student_ema_decay=1.0 is not a number strictly between 0 and 1"),
        ({"student_ema_decay": 0}, "student_ema_decay=0 is not a number strictly between 0 and 1"),
        ({"student_ema_decay": True}, "student_ema_decay=True is not a number"),
        ({"student_ema_decay": "0.999"}, "student_ema_decay='0.999' is not a number"),
    ],
)
def test_a_setting_that_cannot_run_is_refused_with_what_is_wrong(settings, problem):
    with pytest.raises(DistillationConfigError) as refusal:
        check_method(hlfd_config(**settings))
    (only,) = refusal.value.problems
    assert only.startswith(problem) and only.endswith("Correct it in the trainer's `distillation`.")


def test_every_problem_of_a_declaration_is_named_at_once():
    config = DistillationConfig(weights={"UFD": 0.5, "KDD": 1.0}, weight_schedule="warmup", student_ema_decay=2)
    with pytest.raises(DistillationConfigError) as refusal:
        check_method(config)
    assert len(refusal.value.problems) == 3
    assert "'KDD' is not a distillation term; the registered terms are [" in str(refusal.value)


def test_a_refused_declaration_reaches_nnunetv2_train_users_as_its_message_alone():
    """A UserFacingError is a SystemExit whose message is all that is printed (environment.py)."""
    with pytest.raises(UserFacingError) as refusal:
        check_method(hlfd_config(student_ema_decay=1.5))
    assert isinstance(refusal.value, SystemExit) and refusal.value.code == str(refusal.value)


def test_the_checkpoint_record_holds_the_training_length_only_where_the_schedule_reads_it():
    assert "num_epochs" not in hlfd_config(weight_schedule="warmup", warmup_epochs=5).schedule_record(100)
    assert hlfd_config(weight_schedule="cosine").schedule_record(100)["num_epochs"] == 100
