"""Lesion-wise detection of one prediction mask against one reference mask: connected components (cc3d) matched
by overlap, with sensitivity, precision and F1; empty masks score by `empty_masks`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cc3d
import numpy as np

from nnunetv2_hlfd.evaluation.empty_masks import Emptiness, EmptyConvention, emptiness, empty_mask_value
from nnunetv2_hlfd.evaluation.overlap_metrics import as_mask

# Full neighbourhoods: a lesion touching another only at a corner is one lesion.
DEFAULT_CONNECTIVITY = {2: 8, 3: 26}


@dataclass(frozen=True)
class LesionDetection:
    n_reference: int
    n_reference_detected: int
    n_predicted: int
    n_predicted_matched: int
    sensitivity: float
    precision: float
    f1: float

    def as_flat_dict(self, prefix: str = "lesion_") -> dict[str, float]:
        return {prefix + name: value for name, value in asdict(self).items()}


def label_lesions(mask: np.ndarray, connectivity: int | None = None) -> tuple[np.ndarray, int]:
    """Connected components of a 2D or 3D mask: (labels 1..n, background 0; n)."""
    mask = as_mask(mask)
    connectivity = connectivity or DEFAULT_CONNECTIVITY[mask.ndim]
    labels, n = cc3d.connected_components(mask, connectivity=connectivity, return_N=True)
    return labels, int(n)


def _lesion_match_matrix(
    ref_labels: np.ndarray, n_ref: int, pred_labels: np.ndarray, n_pred: int, iou_threshold: float | None
) -> np.ndarray:
    """Boolean (n_ref, n_pred) matrix: does reference lesion i match predicted lesion j?

    Only foreground voxels are histogrammed, so a whole CT costs no full-size copies.
    """
    in_both = (ref_labels > 0) & (pred_labels > 0)
    pair_codes = (ref_labels[in_both].astype(np.int64) - 1) * n_pred + (pred_labels[in_both] - 1)
    intersection = np.bincount(pair_codes, minlength=n_ref * n_pred).reshape(n_ref, n_pred)
    if iou_threshold is None:
        return intersection > 0
    ref_sizes = np.bincount(ref_labels[ref_labels > 0], minlength=n_ref + 1)[1:, None]
    pred_sizes = np.bincount(pred_labels[pred_labels > 0], minlength=n_pred + 1)[None, 1:]
    iou = intersection / (ref_sizes + pred_sizes - intersection)
    return (intersection > 0) & (iou >= iou_threshold)


def _f1(sensitivity: float, precision: float) -> float:
    total = sensitivity + precision
    return 2.0 * sensitivity * precision / total if total > 0 else 0.0


def lesion_detection(
    pred: np.ndarray,
    ref: np.ndarray,
    iou_threshold: float | None = None,
    connectivity: int | None = None,
    convention: EmptyConvention | str = EmptyConvention.NNUNET,
) -> LesionDetection:
    """Lesion-wise detection from connected components.

    A reference lesion is detected, and a predicted lesion matched, when the two
    overlap: by any voxel (default) or with IoU >= `iou_threshold`. Sensitivity is the
    fraction of reference lesions detected, precision the fraction of predicted lesions
    that match a reference lesion, F1 their harmonic mean.
    """
    if iou_threshold is not None and not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    pred, ref = as_mask(pred), as_mask(ref)
    ref_labels, n_ref = label_lesions(ref, connectivity)
    pred_labels, n_pred = label_lesions(pred, connectivity)
    matches = _lesion_match_matrix(ref_labels, n_ref, pred_labels, n_pred, iou_threshold)
    n_detected, n_matched = int(matches.any(axis=1).sum()), int(matches.any(axis=0).sum())
    state = emptiness(pred, ref)
    if state is Emptiness.NEITHER_EMPTY:
        sensitivity, precision = n_detected / n_ref, n_matched / n_pred
        f1 = _f1(sensitivity, precision)
    else:
        sensitivity, precision, f1 = (
            empty_mask_value(name, state, convention)
            for name in ("lesion_sensitivity", "lesion_precision", "lesion_f1")
        )
    return LesionDetection(n_ref, n_detected, n_pred, n_matched, sensitivity, precision, f1)
