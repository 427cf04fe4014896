"""Per-case metrics against values counted by hand on small synthetic masks."""

import math
from pathlib import Path

import numpy as np
import pytest

from nnunetv2_hlfd.evaluation.analysis import dsc_by_volume_tercile
from nnunetv2_hlfd.evaluation.empty_masks import EmptyConvention
from nnunetv2_hlfd.evaluation.lesion_metrics import lesion_detection
from nnunetv2_hlfd.evaluation.metrics import evaluate_case, evaluate_masks
from nnunetv2_hlfd.evaluation.overlap_metrics import (
    absolute_relative_volume_difference,
    dice,
    mask_volume_ml,
    relative_volume_difference,
    volumetric_overlap_error,
)
from nnunetv2_hlfd.evaluation.paper_metrics import (
    paper_protocol_scores,
    paper_protocol_scores_from_probabilities,
    paper_slice_axis,
)
from nnunetv2_hlfd.evaluation.protocol import STANDARD_METRICS
from nnunetv2_hlfd.evaluation.surface_metrics import hd95, surface_dice


def empty(shape=(6, 6, 6)):
    return np.zeros(shape, dtype=bool)


def box(shape, *slices):
    mask = np.zeros(shape, dtype=bool)
    mask[slices] = True
    return mask


def row_mask(indices, length=10):
    """A 1 x 1 x length volume with the given voxels set: counts are easy to read off."""
    mask = np.zeros((1, 1, length), dtype=bool)
    mask[0, 0, list(indices)] = True
    return mask


# Reference voxels 0-3, prediction voxels 2-5: |G| = 4, |P| = 4, |P∩G| = 2, |P∪G| = 6.
REF_ROW = row_mask(range(4))
PRED_ROW = row_mask(range(2, 6))


# --- overlap metrics ----------------------------------------------------------------


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


# --- empty masks --------------------------------------------------------------------


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


# --- HD95 and surface Dice in mm ----------------------------------------------------

SHAPE = (10, 10, 10)
CUBE = box(SHAPE, slice(3, 7), slice(3, 7), slice(3, 7))


@pytest.mark.parametrize("z_spacing", [1.0, 2.5, 3.0])
def test_hd95_of_a_one_voxel_shift_along_z_is_the_z_spacing(z_spacing):
    shifted = np.roll(CUBE, 1, axis=0)
    assert hd95(shifted, CUBE, (z_spacing, 0.8, 0.8)) == pytest.approx(z_spacing)


def test_hd95_of_a_one_voxel_shift_along_x_ignores_the_z_spacing():
    shifted = np.roll(CUBE, 1, axis=2)
    assert hd95(shifted, CUBE, (3.0, 1.0, 0.7)) == pytest.approx(0.7)


def test_hd95_of_identical_masks_is_zero():
    assert hd95(CUBE, CUBE, (3.0, 1.0, 1.0)) == 0.0


def test_hd95_does_not_depend_on_background_around_the_masks():
    # One mask touches the image border, where cropping must keep it a surface.
    small_ref = box((6, 6, 6), slice(0, 3), slice(1, 4), slice(1, 4))
    small_pred = box((6, 6, 6), slice(0, 4), slice(1, 4), slice(1, 5))
    padded = [np.pad(m, ((0, 8), (5, 5), (5, 5))) for m in (small_pred, small_ref)]
    spacing = (2.0, 1.0, 0.5)
    assert hd95(*padded, spacing) == pytest.approx(hd95(small_pred, small_ref, spacing))


def test_hd95_of_a_two_pixel_shift_in_2d_scales_with_the_pixel_width():
    square = box((12, 12), slice(3, 7), slice(3, 7))
    assert hd95(np.roll(square, 2, axis=1), square, (1.0, 2.0)) == pytest.approx(4.0)


def test_hd95_rejects_a_spacing_of_the_wrong_length():
    with pytest.raises(ValueError, match="spacing"):
        hd95(CUBE, CUBE, (1.0, 1.0))


def test_surface_dice_of_identical_masks_is_one_at_zero_tolerance():
    assert surface_dice(CUBE, CUBE, (3.0, 1.0, 1.0), tolerance_mm=0.0) == pytest.approx(1.0)


def test_surface_dice_counts_a_shift_within_the_tolerance_as_agreement():
    shifted = np.roll(CUBE, 1, axis=0)
    assert surface_dice(shifted, CUBE, (3.0, 1.0, 1.0), tolerance_mm=3.0) == pytest.approx(1.0)


def test_surface_dice_tolerance_is_in_mm_not_voxels():
    shifted = np.roll(CUBE, 1, axis=0)
    at_1mm = surface_dice(shifted, CUBE, (1.0, 1.0, 1.0), tolerance_mm=2.0)
    at_3mm = surface_dice(shifted, CUBE, (3.0, 1.0, 1.0), tolerance_mm=2.0)
    assert at_1mm == pytest.approx(1.0)
    assert 0.0 < at_3mm < 1.0


def test_surface_dice_of_masks_further_apart_than_the_tolerance_is_zero():
    near = box((20, 8, 8), slice(1, 4), slice(2, 5), slice(2, 5))
    far = box((20, 8, 8), slice(14, 17), slice(2, 5), slice(2, 5))
    assert surface_dice(near, far, (1.0, 1.0, 1.0), tolerance_mm=2.0) == 0.0


# Reference: a thin row of 40 voxels (every voxel is an edge voxel) along x at y = 5;
# y spacing 0.5 mm, so a voxel's neighbour across y is 0.5 mm away.
ROW_SPACING = (2.0, 0.5, 0.8)


def row_with_outliers(n_outliers: int):
    ref = np.zeros((3, 20, 45), dtype=bool)
    ref[1, 5, 2:42] = True
    pred = np.zeros_like(ref)
    pred[1, 6, 2:42] = True  # the row moved by one voxel along y: 40 distances of 0.5 mm
    for x in (20, 10, 30)[:n_outliers]:
        pred[1, 16, x] = True  # isolated voxels 11 rows from the reference: 11 * 0.5 = 5.5 mm
    return pred, ref


def test_hd95_ignores_outliers_that_are_fewer_than_5_percent_of_the_surface():
    pred, ref = row_with_outliers(1)
    # prediction -> reference: 40 distances of 0.5 mm and one of 5.5 mm (1 of 41, 2.4%).
    # The 95th percentile of 41 sorted values (linear interpolation, as numpy/torch) sits at
    # position 0.95 * 40 = 38, a 0.5. Reference -> prediction: every voxel 0.5 mm from the
    # moved row. HD95 = max(0.5, 0.5) = 0.5 mm, while the maximum (Hausdorff) distance is 5.5 mm.
    assert hd95(pred, ref, ROW_SPACING) == pytest.approx(0.5)


def test_hd95_interpolates_once_outliers_are_more_than_5_percent():
    pred, ref = row_with_outliers(3)
    # 40 distances of 0.5 mm and 3 of 5.5 mm (3 of 43, 7%): position 0.95 * 42 = 39.9 lies
    # between the last 0.5 (index 39) and the first 5.5 (index 40): 0.5 + 0.9 * (5.5 - 0.5) = 5.0 mm.
    assert hd95(pred, ref, ROW_SPACING) == pytest.approx(5.0)


def test_surface_dice_weights_contour_lengths_by_the_anisotropic_spacing():
    # 2D, spacing 3 mm (rows) x 1 mm (columns). Reference: a 3 x 5 pixel rectangle; the prediction
    # adds one isolated pixel 3 rows above it. Contours run through the centres of 2x2 pixel
    # blocks (DeepMind's surfels): a block with one foreground pixel holds a diagonal of
    # 0.5 * sqrt(3^2 + 1^2) = sqrt(10) / 2 mm, one with two pixels side by side a straight piece
    # of one pixel's width along the side.
    #   rectangle: 2 * (3 - 1) * 3 mm + 2 * (5 - 1) * 1 mm + 4 corners * sqrt(10) / 2 = 20 + 2 sqrt(10)
    #   lone pixel: 4 corners * sqrt(10) / 2 = 2 sqrt(10)
    # The rectangles coincide (distance 0); the pixel's contour is 3 rows = 9 mm from the
    # reference's, beyond the 4 mm tolerance (in voxels, 3 < 4, it would count).
    # Surface Dice = (rect + rect) / (rect + rect + pixel) = (40 + 4 sqrt(10)) / (40 + 6 sqrt(10)).
    ref = box((14, 12), slice(2, 5), slice(3, 8))
    pred = ref.copy()
    pred[8, 5] = True
    expected = (40 + 4 * math.sqrt(10)) / (40 + 6 * math.sqrt(10))
    assert surface_dice(pred, ref, (3.0, 1.0), tolerance_mm=4.0) == pytest.approx(expected)


# --- real geometry: a liver label of a CT, 1 x 0.81 x 0.81 mm ---------------------------

# In the repository (origin and licence: its README.md), so the test runs in every clone.
REAL_CT_LABELS = Path(__file__).resolve().parents[1] / "data" / "realct"
REAL_LIVER = REAL_CT_LABELS / "liver_spine_label.nii.gz"


@pytest.fixture(scope="module")
def real_liver():
    """The liver (label 1) of dcmqi's 3-slice CT label map, with its spacing in (z, y, x) as the
    benchmark reads it (nnU-Net's SimpleITK reader)."""
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    from nnunetv2_hlfd.evaluation.label_maps import read_segmentation

    segmentation = read_segmentation(REAL_LIVER, SimpleITKIO())
    return segmentation.array == 1, segmentation.spacing


def test_real_liver_grid_is_read_in_nnunets_axis_order(real_liver):
    liver, spacing = real_liver
    assert spacing == pytest.approx((1.0, 0.8105, 0.8105), abs=1e-4)  # file: 0.8105 x 0.8105 x 1 (x, y, z)
    assert [int(liver[z].sum()) for z in range(3)] == [36233, 35645, 35220]


def test_real_liver_without_its_last_slice(real_liver):
    liver, spacing = real_liver
    pred = liver.copy()
    pred[2] = False
    # Slices hold n = 36233, 35645, 35220 voxels: |G| = 107098, |P| = |P∩G| = 71878.
    # DSC = 2 * 71878 / (71878 + 107098); RVD = 71878 / 107098 - 1 = -35220 / 107098; VOE the same
    # magnitude (P inside G: 1 - |P| / |G|). Volumes: voxel 1 * 0.81054699^2 mm^3 = 0.6569864 mm^3.
    values = evaluate_masks(pred, liver, spacing)
    assert values["dsc"] == pytest.approx(2 * 71878 / (71878 + 107098))
    assert values["rvd"] == pytest.approx(-35220 / 107098)
    assert values["voe"] == pytest.approx(35220 / 107098)
    assert values["reference_volume_ml"] == pytest.approx(107098 * 0.8105469942**2 / 1000)  # 70.36 mL


def test_real_liver_moved_one_slice_has_hd95_of_the_slice_spacing(real_liver):
    liver, spacing = real_liver
    ref = np.pad(liver, ((2, 2), (0, 0), (0, 0)))  # empty slices around, so moving loses nothing
    pred = np.roll(ref, 1, axis=0)
    # A translation by 1 slice moves every surface voxel 1 mm, so no distance exceeds 1 mm. The
    # prediction's new top slice (35220 voxels, about a third of the mask, far above 5% of its
    # surface) lies exactly 1 mm above the reference's top slice and has no reference voxel in its
    # own slice: the 95th percentile is 1 mm, the z spacing, not the 0.81 mm in-plane one.
    assert hd95(pred, ref, spacing) == pytest.approx(1.0)


def test_real_liver_moved_one_voxel_in_plane_is_within_a_0_82_mm_tolerance(real_liver):
    liver, spacing = real_liver
    # Every surface point moves 0.8105 mm along x: all of the surface lies within 0.82 mm,
    # whereas 1 voxel taken as 1 mm (spacing ignored or axes swapped) would exceed it.
    assert surface_dice(np.roll(liver, 1, axis=2), liver, spacing, tolerance_mm=0.82) == pytest.approx(1.0)


# --- lesion detection ---------------------------------------------------------------

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


# --- paper protocol -----------------------------------------------------------------


def paper_case():
    """Reference tumour on slices 1 and 2 only; the prediction also fires on slice 4."""
    ref = np.zeros((5, 4, 4), dtype=bool)
    ref[1, 0, 0:4] = True  # 4 voxels
    ref[2, 1, 0:2] = True  # 2 voxels
    pred = np.zeros_like(ref)
    pred[1, 0, 0:3] = True  # 3 voxels, all inside the reference
    pred[2, 1, 0:4] = True  # 4 voxels, 2 inside the reference
    pred[4, 3, 3] = True  # outside the tumour slices: ignored
    return pred, ref


def test_paper_protocol_pools_tumour_slices_with_plus_one_smoothing():
    pred, ref = paper_case()
    # Slices 1-2: P = 3 + 4 = 7, G = 4 + 2 = 6, I = 3 + 2 = 5.
    scores = paper_protocol_scores(pred, ref, slice_axis=0)
    assert scores.dsc == pytest.approx((2 * 5 + 1) / (7 + 6 + 1))
    assert scores.rvd == pytest.approx(7 / 6 - 1)
    assert scores.n_slices == 2


def test_paper_protocol_without_reference_tumour_is_nan():
    pred, ref = paper_case()
    scores = paper_protocol_scores(pred, np.zeros_like(ref), slice_axis=0)
    assert math.isnan(scores.dsc) and math.isnan(scores.rvd)


def test_paper_protocol_counts_probabilities_strictly_above_0_4_as_tumour():
    _, ref = paper_case()
    probability = np.full(ref.shape, 0.1)
    probability[1, 0, 0:4] = 0.41  # above the threshold: 4 voxels, all tumour
    probability[2, 1, 0:4] = 0.4  # at the threshold: not tumour
    scores = paper_protocol_scores_from_probabilities(probability, ref, slice_axis=0)
    # P = 4, G = 6, I = 4.
    assert scores.dsc == pytest.approx((2 * 4 + 1) / (4 + 6 + 1))
    assert scores.rvd == pytest.approx(4 / 6 - 1)


def real_kits_tumour(case: str) -> tuple[np.ndarray, tuple[float, ...]]:
    """The tumour (label 2) of a real KiTS19 label map as the benchmark reads it: (z, y, x) arrays
    of nnU-Net's SimpleITK reader; KiTS19 as distributed puts its axial slices on the last of them."""
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    from nnunetv2_hlfd.evaluation.label_maps import read_segmentation

    segmentation = read_segmentation(REAL_CT_LABELS / f"{case}_segmentation.nii.gz", SimpleITKIO())
    return segmentation.array == 2, segmentation.spacing


@pytest.mark.parametrize("case, axial_tumour_slices", [("case_00004", 8), ("case_00061", 13)])
def test_paper_protocol_slices_the_lowest_resolution_axis_of_real_kits19(case, axial_tumour_slices):
    tumour, spacing = real_kits_tumour(case)
    axis = paper_slice_axis(spacing)
    assert spacing[axis] >= 4.0  # the 4-5 mm slice step, not an in-plane 0.98 mm axis
    assert paper_protocol_scores(tumour, tumour, axis).n_slices == axial_tumour_slices


def test_paper_protocol_slices_the_axis_of_nnunets_2d_configuration_when_given():
    _, spacing = real_kits_tumour("case_00004")
    # plans transpose the low-resolution axis first; here a 2d model slicing array axis 1
    assert paper_slice_axis(spacing, transpose_forward=(1, 0, 2)) == 1
    assert paper_slice_axis(spacing, transpose_forward=(2, 0, 1)) == paper_slice_axis(spacing) == 2


def test_paper_protocol_ignores_false_positives_outside_the_axial_tumour_slices_of_real_kits19():
    tumour, spacing = real_kits_tumour("case_00004")
    axial = np.flatnonzero(tumour.any(axis=(0, 1)))
    rows, columns = np.flatnonzero(tumour.any(axis=(1, 2))), np.flatnonzero(tumour.any(axis=(0, 2)))
    prediction = tumour.copy()
    # two small false positives in the tumour's rows and columns, but on axial slices without tumour
    for z in (axial.min() - 3, axial.max() + 3):
        prediction[rows[0] : rows[0] + 3, columns[0] : columns[0] + 3, z] = True
    scores = paper_protocol_scores(prediction, tumour, paper_slice_axis(spacing))
    assert (scores.dsc, scores.rvd, scores.n_slices) == (1.0, 0.0, len(axial))


# --- DSC by tumour size -------------------------------------------------------------


def test_terciles_average_dsc_over_the_thirds_sorted_by_volume():
    volumes = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0]
    dsc_values = [0.55, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6]  # DSC = volume / 10 +- 0.05
    table = dsc_by_volume_tercile(volumes, dsc_values).set_index("tercile")
    assert table.loc["small", "mean_dsc"] == pytest.approx((0.1 + 0.2 + 0.3) / 3)
    assert table.loc["medium", "mean_dsc"] == pytest.approx((0.4 + 0.55 + 0.6) / 3)
    assert table.loc["large", "mean_dsc"] == pytest.approx((0.7 + 0.8 + 0.9) / 3)
    assert table.loc["medium", ["volume_min_ml", "volume_max_ml"]].tolist() == [4.0, 6.0]


def test_terciles_leave_out_cases_without_reference_tumour():
    table = dsc_by_volume_tercile([0.0, 1.0, 2.0, 3.0], [float("nan"), 0.1, 0.2, 0.3])
    assert table["n_cases"].tolist() == [1, 1, 1]


def test_terciles_of_an_uneven_count_give_the_extra_case_to_the_smaller_volumes():
    table = dsc_by_volume_tercile([1, 2, 3, 4, 5, 6, 7], [0.5] * 7)
    assert table["n_cases"].tolist() == [3, 2, 2]


def test_terciles_average_dsc_without_the_nan_cases():
    table = dsc_by_volume_tercile([1, 2, 3, 4, 5, 6], [0.2, float("nan"), 0.5, 0.5, 0.7, 0.9])
    assert table.loc[0, "mean_dsc"] == pytest.approx(0.2)
    assert table.loc[0, "n_valid"] == 1


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
