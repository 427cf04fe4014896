"""Volume and overlap metrics of one prediction mask against one reference mask: DSC, (absolute) relative volume
difference, volumetric overlap error and the volume in ml; empty masks score by `empty_masks`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from nnunetv2_hlfd.evaluation.empty_masks import EmptyConvention, emptiness, empty_mask_value

_MM3_PER_ML = 1000.0


def as_mask(array: np.ndarray) -> np.ndarray:
    return np.asarray(array).astype(bool, copy=False)


def overlap_counts(pred: np.ndarray, ref: np.ndarray) -> tuple[int, int, int]:
    """(|P|, |G|, |P∩G|) as Python ints."""
    return int(pred.sum()), int(ref.sum()), int(np.logical_and(pred, ref).sum())


def mask_volume_ml(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Volume of the mask in millilitres: voxel count times voxel volume (mm³)."""
    return float(as_mask(mask).sum()) * float(np.prod(spacing)) / _MM3_PER_ML


def _overlap_metric(
    name: str,
    formula: Callable[[int, int, int], float],
    pred: np.ndarray,
    ref: np.ndarray,
    convention: EmptyConvention | str = EmptyConvention.NNUNET,
) -> float:
    """`formula(|P|, |G|, |P∩G|)` when both masks have voxels, else the empty-mask policy's value."""
    pred, ref = as_mask(pred), as_mask(ref)
    if (value := empty_mask_value(name, emptiness(pred, ref), convention)) is not None:
        return value
    return formula(*overlap_counts(pred, ref))


def dice(pred: np.ndarray, ref: np.ndarray, convention: EmptyConvention | str = EmptyConvention.NNUNET) -> float:
    return _overlap_metric("dsc", lambda n_pred, n_ref, n_both: 2.0 * n_both / (n_pred + n_ref), pred, ref, convention)


def relative_volume_difference(pred: np.ndarray, ref: np.ndarray) -> float:
    """Signed RVD, |P|/|G| - 1: negative when the prediction is too small."""
    return _overlap_metric("rvd", lambda n_pred, n_ref, _: n_pred / n_ref - 1.0, pred, ref)


def absolute_relative_volume_difference(pred: np.ndarray, ref: np.ndarray) -> float:
    # abs() keeps NaN and turns the policy's -1 into 1, matching the abs_rvd rule.
    return abs(relative_volume_difference(pred, ref))


def volumetric_overlap_error(
    pred: np.ndarray, ref: np.ndarray, convention: EmptyConvention | str = EmptyConvention.NNUNET
) -> float:
    return _overlap_metric(
        "voe", lambda n_pred, n_ref, n_both: 1.0 - n_both / (n_pred + n_ref - n_both), pred, ref, convention
    )
