"""What each metric scores on empty masks: the one table, by either convention."""

import math

import numpy as np
import pytest
from mask_builders import REF_ROW, box, empty

from nnunetv2_hlfd.evaluation.empty_masks import EmptyConvention
from nnunetv2_hlfd.evaluation.overlap_metrics import (
    dice,
    relative_volume_difference,
    volumetric_overlap_error,
)
from nnunetv2_hlfd.evaluation.surface_metrics import hd95, surface_dice


def test_dice_of_two_empty_masks_is_nan_by_nnunet_convention():
    assert math.isnan(dice(empty(), empty()))


def test_dice_of_two_empty_masks_is_one_by_kits_convention():
    assert dice(empty(), empty(), EmptyConvention.KITS) == 1.0


def test_dice_with_empty_reference_but_a_prediction_is_zero():
    assert dice(REF_ROW, np.zeros_like(REF_ROW)) == 0.0


def test_dice_with_empty_prediction_is_zero_even_by_kits_convention():
    assert dice(np.zeros_like(REF_ROW), REF_ROW, "kits") == 0.0


def test_voe_of_two_empty_masks_is_zero_by_kits_convention():
    assert volumetric_overlap_error(empty(), empty(), EmptyConvention.KITS) == 0.0


def test_voe_with_empty_prediction_is_one():
    assert volumetric_overlap_error(np.zeros_like(REF_ROW), REF_ROW) == 1.0


def test_rvd_with_empty_reference_is_nan():
    assert math.isnan(relative_volume_difference(REF_ROW, np.zeros_like(REF_ROW)))


def test_rvd_of_two_empty_masks_is_nan_even_by_kits_convention():
    assert math.isnan(relative_volume_difference(empty(), empty()))


def test_rvd_with_empty_prediction_is_minus_one():
    assert relative_volume_difference(np.zeros_like(REF_ROW), REF_ROW) == -1.0


def test_hd95_with_empty_prediction_is_the_image_diagonal_in_mm():
    shape, spacing = (4, 5, 6), (3.0, 2.0, 1.0)
    ref = box(shape, slice(1, 3), slice(1, 3), slice(1, 3))
    expected = math.sqrt((4 * 3.0) ** 2 + (5 * 2.0) ** 2 + (6 * 1.0) ** 2)
    assert hd95(empty(shape), ref, spacing) == pytest.approx(expected)


def test_hd95_of_two_empty_masks_is_nan_by_nnunet_and_zero_by_kits_convention():
    spacing = (1.0, 1.0, 1.0)
    assert math.isnan(hd95(empty(), empty(), spacing))
    assert hd95(empty(), empty(), spacing, EmptyConvention.KITS) == 0.0


def test_surface_dice_with_empty_reference_but_a_prediction_is_zero():
    pred = box((6, 6, 6), slice(1, 3), slice(1, 3), slice(1, 3))
    assert surface_dice(pred, empty(), (1.0, 1.0, 1.0), tolerance_mm=100.0) == 0.0


def test_surface_dice_of_two_empty_masks_is_one_by_kits_convention():
    assert surface_dice(empty(), empty(), (1.0, 1.0, 1.0), convention="kits") == 1.0
