"""The speed benchmark on tiny nnU-Net plans: consistent numbers, and levers that do what they say.
No timing is asserted here; the targets and the measured figures are in docs/BENCHMARKS.md."""

import pytest
import torch

from nnunetv2_hlfd.distillation.config import hlfd_config
from nnunetv2_hlfd.speed.offline_plans import kits_like_fingerprint, plan
from nnunetv2_hlfd.speed.offline_trainers import initialized_trainer, method_trainer, random_teacher, synthetic_batch
from nnunetv2_hlfd.speed.report import markdown_report, overhead_breakdown
from nnunetv2_hlfd.speed.step_time import (
    PRECISION_TOLERANCE,
    Setting,
    measure_setting,
    precision_errors,
)
from nnunetv2_hlfd.training import teacher as teachers
from nnunetv2_hlfd.training.student_trainer import nnUNetTrainerStudent
from nnunetv2_hlfd.utilities.timing import time_side_by_side

TINY_CT = kits_like_fingerprint(10, (8, 32, 32))
CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_2d():
    plans, dataset_json = plan("default", TINY_CT)
    return plans, dataset_json, random_teacher(plans, "2d", dataset_json, CPU)


def distillation_trainer(tiny_2d, method):
    plans, dataset_json, teacher = tiny_2d
    trainer = initialized_trainer(method_trainer(method, "Tested"), plans, "2d", dataset_json, CPU, teacher)
    return trainer, synthetic_batch(trainer)


def count_decoder_calls(trainer, batch) -> int:
    calls = []
    handle = trainer.teacher.network.decoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        trainer.train_step(batch)
    finally:
        handle.remove()
    return len(calls)


def test_ratios_in_the_report_come_from_the_same_measurements():
    result = measure_setting(
        Setting("default", "2d", batch_size=2, fingerprint=TINY_CT), {"HLFD": "HLFD"}, CPU, levers=(), warmup=0, steps=2
    )
    medians = {name: m.median for name, m in result.times.items()}
    assert all(len(m.raw_times) == 2 for m in result.times.values())
    assert result.ratio("HLFD step", "student step") == medians["HLFD step"] / medians["student step"]
    assert result.ratio("HLFD step", "student step", "teacher forward") == pytest.approx(
        medians["HLFD step"] / (medians["student step"] + medians["teacher forward"])
    )
    assert sum(overhead_breakdown(result, "HLFD").values()) == pytest.approx(1.0)
    assert f"| {result.ratio('HLFD step', 'student step'):.3f} |" in markdown_report([result], ["HLFD"])


def test_levers_are_timed_in_rounds_of_their_own_beside_their_references():
    result = measure_setting(
        Setting("default", "2d", batch_size=2, fingerprint=TINY_CT),
        {"HLFD": "HLFD"},
        CPU,
        levers=("encoder_only",),
        warmup=0,
        steps=2,
    )
    assert "teacher forward encoder only" not in result.times  # never in the steps' rounds
    assert set(result.lever_times) == {"student step", "teacher forward", "teacher forward encoder only"}
    lever = result.lever_times["teacher forward encoder only"].median
    ratio = lever / result.lever_times["teacher forward"].median
    assert f"| encoder only | {lever:.3f}" in markdown_report([result], ["HLFD"])
    assert f"| {ratio:.2f}x |" in markdown_report([result], ["HLFD"])


def test_each_callable_runs_once_per_round_and_warmup_is_discarded():
    calls = {"a": 0, "b": 0}
    measured = {name: (lambda name=name: calls.__setitem__(name, calls[name] + 1)) for name in calls}
    times = time_side_by_side(measured, CPU, warmup=2, steps=4)
    assert calls == {"a": 6, "b": 6}
    assert [len(times[name].raw_times) for name in calls] == [4, 4]


def test_feature_only_method_skips_the_teacher_decoder(tiny_2d):
    trainer, batch = distillation_trainer(tiny_2d, hlfd_config(("UFD", "IFD")))
    assert count_decoder_calls(trainer, batch) == 0


def test_method_reading_teacher_outputs_runs_the_teacher_decoder(tiny_2d):
    trainer, batch = distillation_trainer(tiny_2d, hlfd_config())
    assert count_decoder_calls(trainer, batch) == 1


def test_bf16_teacher_is_within_tolerance_of_fp32(tiny_2d):
    trainer, batch = distillation_trainer(tiny_2d, hlfd_config())
    errors = precision_errors(trainer, batch, "bf16")
    assert 0 < errors["teacher maps"] <= PRECISION_TOLERANCE["bf16"]  # > 0: bf16 did run
    assert errors["terms"] <= PRECISION_TOLERANCE["bf16"]


def test_unknown_teacher_precision_is_refused(monkeypatch):
    monkeypatch.setenv(teachers.TEACHER_PRECISION_ENV, "fp8")
    with pytest.raises(teachers.TeacherError, match="fp8"):
        teachers.teacher_precision()


def test_a_trainer_without_distillation_is_not_a_method():
    with pytest.raises(ValueError, match="not a distillation trainer"):
        method_trainer("Student")
    with pytest.raises(ValueError, match="nnUNetTrainerStudent is not a distillation trainer"):
        method_trainer(nnUNetTrainerStudent)


def test_a_trainer_class_found_once_is_taken_as_it_is():
    found = method_trainer("HLFD")
    assert method_trainer(found) is found


def test_ensemble_teacher_is_timed_with_all_members_and_in_rotation():
    result = measure_setting(
        Setting("default", "2d", batch_size=2, fingerprint=TINY_CT, members=2),
        {"HLFD": "HLFD"},
        CPU,
        levers=(),
        warmup=0,
        steps=1,
    )
    rotation = result.times["HLFD step one member per step"].median
    report = markdown_report([result], ["HLFD"])
    assert "| 2d default, 2 members | 2 |" in report and f"{rotation:.3f}" in report
