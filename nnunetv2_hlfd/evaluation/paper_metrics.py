"""The paper protocol's tumour scores, as the reference HLFD code computes them: DSC and RVD on the tumour-bearing
slices with its own smoothing, from a mask or from the tumour probability cut at 0.4."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nnunetv2_hlfd.evaluation.overlap_metrics import as_mask, overlap_counts

PAPER_PROTOCOL_THRESHOLD = 0.4


@dataclass(frozen=True)
class PaperProtocolScores:
    dsc: float
    rvd: float
    n_slices: int


def paper_slice_axis(spacing: Sequence[float], transpose_forward: Sequence[int] | None = None) -> int:
    """The array axis the paper protocol slices: the one nnU-Net's 2d configuration slices
    (`transpose_forward[0]` of the plans) or, without plans, the lowest-resolution (largest
    spacing) axis, the first of equals, as nnU-Net's planner chooses it."""
    if transpose_forward is not None:
        return int(transpose_forward[0])
    return int(np.argmax(np.asarray(spacing, dtype=float)))


def paper_protocol_scores(pred_mask: np.ndarray, ref_mask: np.ndarray, slice_axis: int) -> PaperProtocolScores:
    """Tumour DSC and signed RVD as the reference HLFD code computes them.

    Only the slices along `slice_axis` (see `paper_slice_axis`) in which the reference has
    tumour count (the reference code trains and tests on tumour slices only). Voxels of those
    slices are pooled per case; DSC = (2I + 1) / (P + G + 1) with its +1 smoothing, and
    RVD = P / G - 1. A case without reference tumour has no slices: both are NaN.
    """
    pred, ref = as_mask(pred_mask), as_mask(ref_mask)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and reference {ref.shape} differ in shape")
    if not 0 <= slice_axis < ref.ndim:
        raise ValueError(f"slice_axis {slice_axis} is not an axis of masks of shape {ref.shape}")
    pred, ref = np.moveaxis(pred, slice_axis, 0), np.moveaxis(ref, slice_axis, 0)
    tumour_slices = ref.reshape(ref.shape[0], -1).any(axis=1)
    if not tumour_slices.any():
        return PaperProtocolScores(math.nan, math.nan, 0)
    n_pred, n_ref, n_both = overlap_counts(pred[tumour_slices], ref[tumour_slices])
    return PaperProtocolScores(
        dsc=(2.0 * n_both + 1.0) / (n_pred + n_ref + 1.0), rvd=n_pred / n_ref - 1.0, n_slices=int(tumour_slices.sum())
    )


def paper_protocol_scores_from_probabilities(
    tumour_probability: np.ndarray, ref_mask: np.ndarray, slice_axis: int, threshold: float = PAPER_PROTOCOL_THRESHOLD
) -> PaperProtocolScores:
    """`paper_protocol_scores` of the tumour probability map cut at `threshold`.

    Strictly greater than the threshold counts as tumour, as in the reference code.
    """
    return paper_protocol_scores(np.asarray(tumour_probability) > threshold, ref_mask, slice_axis)
