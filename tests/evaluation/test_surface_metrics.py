"""HD95 and surface Dice in mm (MONAI), on synthetic masks and on a real CT's liver label."""

import math
from pathlib import Path

import numpy as np
import pytest
from mask_builders import box

from nnunetv2_hlfd.evaluation.metrics import evaluate_masks
from nnunetv2_hlfd.evaluation.surface_metrics import hd95, surface_dice

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
