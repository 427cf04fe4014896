"""The teacher check: is the study's teacher above a plain intensity window, and was it still learning?"""

from __future__ import annotations

from nnunetv2_hlfd.study.curves import LearningCurve
from nnunetv2_hlfd.study.runs import Run
from nnunetv2_hlfd.study.teacher_check import check_teacher, still_rising, window_dice

DATASET_JSON = {
    "labels": {"background": 0, "kidney": 1, "tumor": 2},
    "kits19_geometry": {
        "plain_threshold_check": {
            "kidney": {"best_window_dice": 0.6, "window_hu": [90, 200]},
            "tumor": {"best_window_dice": 0.18, "window_hu": [80, 160]},
        }
    },
}


def curve(tumour: list[float]) -> LearningCurve:
    n = len(tumour)
    return LearningCurve((0.0,) * n, (0.0,) * n, tuple((0.9, v) for v in tumour))


def teacher(kidney: float, tumour: float, tumour_curve: list[float]) -> Run:
    return Run("nnUNetTrainer", 0, 0, {"kidney": kidney, "tumor": tumour}, {}, curve(tumour_curve))


def test_a_curve_is_still_rising_when_its_last_ten_epochs_gain_at_least_003_on_the_ten_before():
    assert still_rising(curve([0.5] * 10 + [0.53] * 10), 1) is True
    assert still_rising(curve([0.5] * 10 + [0.52] * 10), 1) is False
    assert still_rising(curve([0.0] * 30 + [0.5] * 10 + [0.52] * 10), 1) is False  # only the last 20 count
    assert still_rising(curve([0.1, 0.9]), 1) is None  # too short to tell


def test_the_window_dice_is_read_where_the_converter_recorded_it_and_absent_elsewhere():
    assert window_dice(DATASET_JSON) == {"kidney": 0.6, "tumor": 0.18}
    assert window_dice({"labels": {"background": 0, "liver": 1}}) == {}


def test_a_converged_teacher_clearly_above_the_window_gets_no_warning():
    check = check_teacher([teacher(0.93, 0.58, [0.8] * 20)], ["kidney", "tumor"], DATASET_JSON)
    assert check.warnings == []
    assert [(r["class"], r["window_dice"], r["rising"]) for r in check.rows] == [
        ("kidney", 0.6, False),
        ("tumor", 0.18, False),
    ]


def test_a_teacher_at_the_tumours_onset_and_still_learning_is_warned_about_both():
    check = check_teacher([teacher(0.89, 0.21, [0.0] * 10 + [0.2] * 10)], ["kidney", "tumor"], DATASET_JSON)
    assert len(check.warnings) == 2
    assert "not clearly above a plain intensity window on tumor (DSC 0.210, window 0.180)" in check.warnings[0]
    assert "still learning tumor" in check.warnings[1]
