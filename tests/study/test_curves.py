"""Learning curves read back from nnU-Net's training logs, resumed runs included."""

from __future__ import annotations

import math

import pytest

from nnunetv2_hlfd.study.curves import read_learning_curve


def epoch_lines(epoch: int, train: float, dice: tuple[str, str]) -> str:
    stamp = f"2026-01-01 00:00:{epoch:02d}.000000"
    return (
        f"{stamp}: \n{stamp}: Epoch {epoch}\n{stamp}: Current learning rate: 0.01\n{stamp}: train_loss {train}\n"
        f"{stamp}: val_loss -0.1\n{stamp}: Pseudo dice [{dice[0]}, {dice[1]}]\n{stamp}: Epoch time: 1.0 s\n"
    )


def test_a_resumed_run_continues_its_curve_and_onset_and_area_follow(tmp_path):
    first = epoch_lines(0, 0.5, ("np.float32(0.8)", "np.float32(0.0)")) + epoch_lines(1, 0.4, ("0.85", "0.1"))
    # killed in epoch 2 (no pseudo-Dice), resumed with --c from epoch 2 in a new log
    (tmp_path / "training_log_2026_1_1_09_05_03.txt").write_text(first + "2026-01-01 00:00:02: Epoch 2\n")
    resumed = epoch_lines(2, 0.3, ("np.float32(0.9)", "np.float32(0.25)")) + epoch_lines(3, 0.2, ("0.9", "nan"))
    (tmp_path / "training_log_2026_1_1_10_00_00.txt").write_text(resumed)
    curve = read_learning_curve(tmp_path)
    assert curve.epochs == 4 and curve.train_loss == (0.5, 0.4, 0.3, 0.2)
    assert curve.class_curve(1)[:3] == (0.0, 0.1, 0.25) and math.isnan(curve.class_curve(1)[3])
    assert curve.onset(1, 0.2) == 2 and curve.onset(1, 0.5) is None and curve.onset(0, 0.8) == 0
    assert curve.area(1) == pytest.approx((0.0 + 0.1 + 0.25) / 3)


def test_a_folder_without_a_finished_epoch_says_so(tmp_path):
    (tmp_path / "training_log_2026_1_1_00_00_00.txt").write_text("2026-01-01 00:00:00: Epoch 0\n")
    with pytest.raises(ValueError, match="no finished epoch in the training logs of"):
        read_learning_curve(tmp_path)
