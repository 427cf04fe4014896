"""Lesion-wise detection: connected components matched by overlap."""

import math

import numpy as np
import pytest
from mask_builders import box

from nnunetv2_hlfd.evaluation.empty_masks import EmptyConvention
from nnunetv2_hlfd.evaluation.lesion_metrics import lesion_detection

LESION_SHAPE = (8, 20, 20)


def lesions(*corners, size=2):
    mask = np.zeros(LESION_SHAPE, dtype=bool)
    for z, y, x in corners:
        mask[z : z + size, y : y + size, x : x + size] = True
    return mask


def test_lesion_detection_counts_detected_and_false_positive_lesions():
    ref = lesions((1, 1, 1), (1, 8, 8), (1, 15, 15))
    # Overlaps the first two reference lesions; two more lesions hit nothing.
    pred = lesions((1, 2, 2), (1, 8, 9), (5, 1, 15), (5, 15, 1))
    result = lesion_detection(pred, ref)
    assert (result.n_reference, result.n_reference_detected) == (3, 2)
    assert (result.n_predicted, result.n_predicted_matched) == (4, 2)
    assert result.sensitivity == pytest.approx(2 / 3)
    assert result.precision == pytest.approx(2 / 4)
    assert result.f1 == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))


def test_one_predicted_lesion_bridging_two_reference_lesions_detects_both():
    ref = lesions((1, 1, 1), (1, 1, 5))
    pred = box(LESION_SHAPE, slice(1, 3), slice(1, 3), slice(1, 7))
    result = lesion_detection(pred, ref)
    assert (result.n_reference_detected, result.n_predicted_matched) == (2, 1)


def test_iou_threshold_rejects_a_lesion_touched_by_a_single_voxel():
    ref = lesions((1, 1, 1), size=3)
    pred = lesions((3, 3, 3), size=3)  # shares the single voxel (3, 3, 3): IoU 1/53
    assert lesion_detection(pred, ref).sensitivity == 1.0
    assert lesion_detection(pred, ref, iou_threshold=0.5).sensitivity == 0.0


def test_lesions_touching_at_a_corner_are_one_lesion_by_default_in_3d():
    corner_touching = lesions((1, 1, 1), (3, 3, 3))
    assert lesion_detection(corner_touching, corner_touching).n_reference == 1
    assert lesion_detection(corner_touching, corner_touching, connectivity=6).n_reference == 2


def test_pixels_touching_at_a_corner_are_one_lesion_by_default_in_2d():
    diagonal = np.eye(4, dtype=bool)
    assert lesion_detection(diagonal, diagonal).n_reference == 1


def test_lesion_detection_with_empty_prediction_has_zero_sensitivity_and_no_precision():
    result = lesion_detection(np.zeros(LESION_SHAPE, bool), lesions((1, 1, 1)))
    assert result.sensitivity == 0.0
    assert math.isnan(result.precision)
    assert result.f1 == 0.0


def test_lesion_detection_with_empty_reference_has_zero_precision_and_no_sensitivity():
    result = lesion_detection(lesions((1, 1, 1)), np.zeros(LESION_SHAPE, bool))
    assert math.isnan(result.sensitivity)
    assert result.precision == 0.0


def test_lesion_detection_of_two_empty_masks_is_perfect_by_kits_convention():
    nothing = np.zeros(LESION_SHAPE, bool)
    result = lesion_detection(nothing, nothing, convention=EmptyConvention.KITS)
    assert (result.sensitivity, result.precision, result.f1) == (1.0, 1.0, 1.0)
    assert (result.n_reference, result.n_predicted) == (0, 0)
    assert (result.sensitivity, result.precision, result.f1) == (1.0, 1.0, 1.0)
