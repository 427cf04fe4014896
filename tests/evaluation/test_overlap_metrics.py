"""Volume and overlap metrics against values counted by hand on small synthetic masks."""

import pytest
from mask_builders import PRED_ROW, REF_ROW, row_mask

from nnunetv2_hlfd.evaluation.overlap_metrics import (
    absolute_relative_volume_difference,
    dice,
    mask_volume_ml,
    relative_volume_difference,
    volumetric_overlap_error,
)


def test_dice_of_half_overlapping_masks_is_twice_intersection_over_sizes():
    assert dice(PRED_ROW, REF_ROW) == pytest.approx(2 * 2 / (4 + 4))


def test_voe_of_half_overlapping_masks_is_one_minus_intersection_over_union():
    assert volumetric_overlap_error(PRED_ROW, REF_ROW) == pytest.approx(1 - 2 / 6)


def test_rvd_is_positive_when_prediction_is_larger():
    assert relative_volume_difference(row_mask(range(6)), REF_ROW) == pytest.approx(6 / 4 - 1)


def test_rvd_is_negative_when_prediction_is_smaller():
    assert relative_volume_difference(row_mask(range(2)), REF_ROW) == pytest.approx(2 / 4 - 1)


def test_absolute_rvd_drops_the_sign():
    assert absolute_relative_volume_difference(row_mask(range(2)), REF_ROW) == pytest.approx(0.5)


def test_mask_volume_is_voxel_count_times_voxel_volume_in_millilitres():
    mask = row_mask(range(10))
    assert mask_volume_ml(mask, (2.0, 1.0, 0.5)) == pytest.approx(10 * 1.0 / 1000)
