"""Every metric of one case (`metrics.evaluate_case`) against values counted by hand on small synthetic label maps."""

import math

import numpy as np
import pytest

from nnunetv2_hlfd.evaluation.lesion_metrics import lesion_detection
from nnunetv2_hlfd.evaluation.metrics import evaluate_case
from nnunetv2_hlfd.evaluation.protocol import STANDARD_METRICS

# --- evaluate_case ------------------------------------------------------------------


def labelmaps():
    """Kidney (1) voxels 0-5 with tumour (2) in 4-5; the prediction calls 4-6 tumour."""
    ref = np.zeros((1, 1, 10), dtype=np.uint8)
    ref[0, 0, 0:4], ref[0, 0, 4:6] = 1, 2
    pred = np.zeros_like(ref)
    pred[0, 0, 0:4], pred[0, 0, 4:7] = 1, 2
    return pred, ref


def test_evaluate_case_scores_labels_and_regions_separately():
    pred, ref = labelmaps()
    result = evaluate_case(pred, ref, (1.0, 1.0, 1.0), [2, (1, 2)])
    assert result[2]["dsc"] == pytest.approx(2 * 2 / (3 + 2))
    # The region (1, 2) is kidney or tumour: P = 7 voxels, G = 6, all of G inside P.
    assert result[(1, 2)]["dsc"] == pytest.approx(2 * 6 / (7 + 6))
    assert result[(1, 2)]["rvd"] == pytest.approx(7 / 6 - 1)


def test_evaluate_case_reports_reference_volume_for_size_terciles():
    pred, ref = labelmaps()
    result = evaluate_case(pred, ref, (2.0, 1.0, 1.0), [2])
    assert result[2]["reference_volume_ml"] == pytest.approx(2 * 2.0 / 1000)


def test_evaluate_case_gives_a_flat_dict_of_numbers_per_region():
    pred, ref = labelmaps()
    values = evaluate_case(pred, ref, (1.0, 1.0, 1.0), [1])[1]
    assert set(STANDARD_METRICS) <= set(values)  # every metric the standard protocol compares
    assert all(isinstance(v, (int, float)) for v in values.values())


def test_evaluate_case_rejects_labelmaps_of_different_shape():
    pred, ref = labelmaps()
    with pytest.raises(ValueError, match="shape"):
        evaluate_case(pred[..., :5], ref, (1.0, 1.0, 1.0), [1])


def tumour_free_labelmaps(predicted_tumour: bool):
    """Kidney only in the reference; the prediction adds a tumour voxel or not."""
    ref = np.zeros((2, 4, 4), dtype=np.uint8)
    ref[:, 1:3, 1:3] = 1
    pred = ref.copy()
    if predicted_tumour:
        pred[0, 0, 0] = 2
    return pred, ref


def test_evaluate_case_of_a_correctly_tumour_free_case_is_undefined_by_nnunet_convention():
    tumour = evaluate_case(*tumour_free_labelmaps(False), (3.0, 1.0, 1.0), [2])[2]
    for metric in ("dsc", "voe", "rvd", "hd95", "surface_dice", "lesion_sensitivity", "lesion_f1"):
        assert math.isnan(tumour[metric]), metric


def test_evaluate_case_of_a_correctly_tumour_free_case_is_perfect_by_kits_convention():
    tumour = evaluate_case(*tumour_free_labelmaps(False), (3.0, 1.0, 1.0), [2], convention="kits")[2]
    assert (tumour["dsc"], tumour["voe"], tumour["hd95"], tumour["lesion_f1"]) == (1.0, 0.0, 0.0, 1.0)
    assert math.isnan(tumour["rvd"])  # no reference volume to relate to, by either convention


def test_evaluate_case_with_a_tumour_predicted_in_a_tumour_free_case_scores_zero_overlap():
    tumour = evaluate_case(*tumour_free_labelmaps(True), (3.0, 1.0, 1.0), [2])[2]
    assert (tumour["dsc"], tumour["surface_dice"], tumour["lesion_precision"]) == (0.0, 0.0, 0.0)
    assert tumour["hd95"] == pytest.approx(math.sqrt(6.0**2 + 4.0**2 + 4.0**2))  # the image diagonal


def test_evaluate_case_with_a_missed_tumour_scores_worst_values():
    ref, _ = tumour_free_labelmaps(True)  # a tumour voxel in the reference only
    pred = np.where(ref == 2, 0, ref)
    tumour = evaluate_case(pred, ref, (3.0, 1.0, 1.0), [2])[2]
    assert (tumour["dsc"], tumour["rvd"], tumour["abs_rvd"], tumour["lesion_sensitivity"]) == (0.0, -1.0, 1.0, 0.0)
    assert tumour["hd95"] == pytest.approx(math.sqrt(6.0**2 + 4.0**2 + 4.0**2))


def test_lesion_detection_counts_several_lesions_in_2d():
    ref = np.zeros((10, 10), dtype=bool)
    ref[1:3, 1:3] = ref[6:8, 6:8] = ref[1, 8] = True  # three lesions
    pred = np.zeros_like(ref)
    pred[2, 2] = pred[9, 0] = True  # hits the first; one false positive
    result = lesion_detection(pred, ref)
    assert (result.n_reference, result.n_reference_detected, result.n_predicted, result.n_predicted_matched) == (
        3,
        1,
        2,
        1,
    )


def test_surface_dice_takes_a_tolerance_per_class():
    reference = np.zeros((1, 12, 12), dtype=np.uint8)
    reference[0, 2:6, 2:6], reference[0, 6:10, 6:10] = 1, 2
    prediction = np.roll(reference, 1, axis=2)  # both classes one 1 mm voxel to the side
    scores = evaluate_case(prediction, reference, (1.0, 1.0, 1.0), [1, 2], {1: 0.0, 2: 1.5})
    assert scores[1]["surface_dice"] < 1.0 == scores[2]["surface_dice"]
