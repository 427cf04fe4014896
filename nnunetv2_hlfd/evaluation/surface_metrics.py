"""Surface distance metrics of one prediction mask against one reference mask, by MONAI: the 95th-percentile
Hausdorff distance and the normalised surface Dice at a tolerance in mm; empty masks score by `empty_masks`."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from nnunetv2_hlfd.evaluation.empty_masks import EmptyConvention, emptiness, empty_mask_value
from nnunetv2_hlfd.evaluation.overlap_metrics import as_mask
from nnunetv2_hlfd.evaluation.settings import DEFAULT_TOLERANCE_MM

HD_PERCENTILE = 95.0


def image_diagonal_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """The length of the image's diagonal in mm: the norm of shape x spacing (the grid's extent, one
    voxel longer per axis than the distance between its outermost voxel centres)."""
    return float(np.linalg.norm(np.asarray(shape, float) * np.asarray(spacing, float)))


def _crop_to_union(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cut to the bounding box of their union plus one background voxel.

    Distances do not change (the margin keeps every surface a surface), but MONAI
    copies its inputs to float tensors, which for a whole CT would cost gigabytes.
    """
    occupied = np.argwhere(pred | ref)
    lower = np.maximum(occupied.min(axis=0) - 1, 0)
    upper = occupied.max(axis=0) + 2
    box = tuple(slice(lo, hi) for lo, hi in zip(lower, upper))
    return pred[box], ref[box]


def _monai_distance_metric(
    compute: Callable, pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], **options
) -> float:
    """One MONAI metric on one pair of non-empty masks (a batch and channel of one)."""
    import torch

    pred, ref = _crop_to_union(pred, ref)
    as_batch = [torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))[None, None] for m in (pred, ref)]
    with warnings.catch_warnings():
        # MONAI >= 1.5 passes its own deprecated `always_return_as_numpy` internally.
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
        result = compute(*as_batch, include_background=True, spacing=[float(s) for s in spacing], **options)
    return float(result[0, 0])


def _check_spacing(mask: np.ndarray, spacing: Sequence[float]) -> None:
    if len(spacing) != mask.ndim:
        raise ValueError(
            f"spacing {tuple(spacing)} has {len(spacing)} entries but the masks are {mask.ndim}D (shape {mask.shape})"
        )


def hd95(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float],
    convention: EmptyConvention | str = EmptyConvention.NNUNET,
) -> float:
    """95th-percentile Hausdorff distance in mm between the masks' edge voxels, as MONAI's
    `compute_hausdorff_distance(percentile=95)`: max(P95 of the distances from each prediction edge
    voxel to the reference, P95 from each reference edge voxel to the prediction)."""
    pred, ref = as_mask(pred), as_mask(ref)
    _check_spacing(pred, spacing)
    worst = image_diagonal_mm(pred.shape, spacing)
    if (value := empty_mask_value("hd95", emptiness(pred, ref), convention, worst)) is not None:
        return value
    # Imported here: importing MONAI takes seconds, and only distance metrics need it.
    from monai.metrics import compute_hausdorff_distance

    return _monai_distance_metric(compute_hausdorff_distance, pred, ref, spacing, percentile=HD_PERCENTILE)


def surface_dice(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float],
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
    convention: EmptyConvention | str = EmptyConvention.NNUNET,
) -> float:
    """Normalised surface Dice (Nikolov et al.) at `tolerance_mm`, surfel-area weighted.

    MONAI's `use_subvoxels=True` follows DeepMind's surface-distance implementation,
    the one the KiTS21 surface Dice builds on.
    """
    pred, ref = as_mask(pred), as_mask(ref)
    _check_spacing(pred, spacing)
    if (value := empty_mask_value("surface_dice", emptiness(pred, ref), convention)) is not None:
        return value
    from monai.metrics import compute_surface_dice

    return _monai_distance_metric(
        compute_surface_dice, pred, ref, spacing, class_thresholds=[float(tolerance_mm)], use_subvoxels=True
    )
