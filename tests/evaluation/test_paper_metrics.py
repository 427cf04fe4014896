"""The paper protocol's tumour scores, on synthetic masks and on real KiTS19 labels."""

import math
from pathlib import Path

import numpy as np
import pytest

from nnunetv2_hlfd.evaluation.paper_metrics import (
    paper_protocol_scores,
    paper_protocol_scores_from_probabilities,
    paper_slice_axis,
)

# In the repository (origin and licence: its README.md), so the test runs in every clone.
REAL_CT_LABELS = Path(__file__).resolve().parents[1] / "data" / "realct"


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
