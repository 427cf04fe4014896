"""Per-case segmentation metrics of one prediction against one reference.

Masks are boolean arrays of one class or region, 2D or 3D, in nnU-Net/SimpleITK numpy
order (z, y, x); `spacing` is the voxel size in mm in that same order.

Metrics
-------
dsc           2|P∩G| / (|P| + |G|)
rvd           signed relative volume difference (|P| - |G|) / |G| = |P|/|G| - 1
abs_rvd       |rvd|
voe           volumetric overlap error 1 - |P∩G| / |P∪G|
hd95          95th-percentile Hausdorff distance in mm (MONAI, edge voxels): the larger of the
              two one-way 95th percentiles (prediction to reference, reference to
              prediction); medpy's hd95 takes one 95th percentile of both directions pooled
surface_dice  normalised surface Dice at a tolerance in mm (MONAI, DeepMind surfels)
lesion_*      lesion-wise detection from connected components (see `lesion_detection`)

Empty masks
-----------
Whenever the prediction or the reference is empty the value comes from one table,
`empty_mask_value`, never from the formula or the distance library. The formula is
used only when both masks have voxels. `EmptyConvention` picks what "both empty"
scores: NNUNET (default, as nnU-Net's compute_metrics: NaN, so nanmean leaves the case
out) or KITS (as the KiTS challenges: a perfect score).

==================  ===================  =====================  =====================
metric              both empty           reference empty,       prediction empty,
                    (NNUNET / KITS)      prediction not         reference not
==================  ===================  =====================  =====================
dsc                 NaN / 1              0                      0
surface_dice        NaN / 1              0                      0
voe                 NaN / 0              1                      1
rvd                 NaN / NaN            NaN (undefined)        -1
abs_rvd             NaN / NaN            NaN (undefined)        1
hd95                NaN / 0              image diagonal (mm)    image diagonal (mm)
lesion_sensitivity  NaN / 1              NaN (no lesion)        0
lesion_precision    NaN / 1              0                      NaN (no lesion)
lesion_f1           NaN / 1              0                      0
==================  ===================  =====================  =====================

HD95 with one empty mask is the largest distance the image allows (its diagonal in
mm), the worst-case convention of the BraTS challenges: NaN would drop a missed or a
hallucinated structure from the mean and so reward it.

The paper protocol (`paper_protocol_scores`) reproduces the reference HLFD code and has
its own, smoothed, handling; see there.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import Enum

import cc3d
import numpy as np
import pandas as pd
from nnunetv2.evaluation.evaluate_predictions import region_or_label_to_mask

from nnunetv2_hlfd.evaluation.settings import DEFAULT_TOLERANCE_MM

LabelOrRegion = int | tuple[int, ...]

HD_PERCENTILE = 95.0
# Full neighbourhoods: a lesion touching another only at a corner is one lesion.
DEFAULT_CONNECTIVITY = {2: 8, 3: 26}
PAPER_PROTOCOL_THRESHOLD = 0.4
TERCILE_NAMES = ("small", "medium", "large")
_MM3_PER_ML = 1000.0


class EmptyConvention(str, Enum):
    """What a metric scores when both prediction and reference are empty."""

    NNUNET = "nnunet"  # NaN: the case drops out of a nanmean, as in nnU-Net's summary.json
    KITS = "kits"  # perfect score, as the KiTS challenges rank a correctly empty case


class Emptiness(Enum):
    NEITHER_EMPTY = "neither empty"
    BOTH_EMPTY = "both empty"
    REFERENCE_EMPTY = "reference empty"
    PREDICTION_EMPTY = "prediction empty"


@dataclass(frozen=True)
class EmptyMaskRule:
    both_empty_nnunet: float
    both_empty_kits: float
    reference_empty: float
    prediction_empty: float


_NAN = math.nan
# Stands for "the largest distance in the image" in the table; resolved per case.
_WORST_DISTANCE = math.inf

EMPTY_MASK_RULES: dict[str, EmptyMaskRule] = {
    "dsc": EmptyMaskRule(_NAN, 1.0, 0.0, 0.0),
    "surface_dice": EmptyMaskRule(_NAN, 1.0, 0.0, 0.0),
    "voe": EmptyMaskRule(_NAN, 0.0, 1.0, 1.0),
    "rvd": EmptyMaskRule(_NAN, _NAN, _NAN, -1.0),
    "abs_rvd": EmptyMaskRule(_NAN, _NAN, _NAN, 1.0),
    "hd95": EmptyMaskRule(_NAN, 0.0, _WORST_DISTANCE, _WORST_DISTANCE),
    "lesion_sensitivity": EmptyMaskRule(_NAN, 1.0, _NAN, 0.0),
    "lesion_precision": EmptyMaskRule(_NAN, 1.0, 0.0, _NAN),
    "lesion_f1": EmptyMaskRule(_NAN, 1.0, 0.0, 0.0),
}


def emptiness(pred: np.ndarray, ref: np.ndarray) -> Emptiness:
    pred_empty, ref_empty = not pred.any(), not ref.any()
    if pred_empty and ref_empty:
        return Emptiness.BOTH_EMPTY
    if ref_empty:
        return Emptiness.REFERENCE_EMPTY
    if pred_empty:
        return Emptiness.PREDICTION_EMPTY
    return Emptiness.NEITHER_EMPTY


def empty_mask_value(
    metric: str,
    state: Emptiness,
    convention: EmptyConvention | str = EmptyConvention.NNUNET,
    worst_distance_mm: float = math.inf,
) -> float | None:
    """The empty-mask policy: the value of `metric` when a mask is empty, else None.

    None means both masks have voxels and the metric's own formula applies. The table
    is `EMPTY_MASK_RULES` and is documented in the module docstring.
    """
    if state is Emptiness.NEITHER_EMPTY:
        return None
    rule = EMPTY_MASK_RULES[metric]
    if state is Emptiness.BOTH_EMPTY:
        kits = EmptyConvention(convention) is EmptyConvention.KITS
        value = rule.both_empty_kits if kits else rule.both_empty_nnunet
    elif state is Emptiness.REFERENCE_EMPTY:
        value = rule.reference_empty
    else:
        value = rule.prediction_empty
    return worst_distance_mm if value == _WORST_DISTANCE else value


# --- volume and overlap ------------------------------------------------------------


def _as_mask(array: np.ndarray) -> np.ndarray:
    return np.asarray(array).astype(bool, copy=False)


def _overlap_counts(pred: np.ndarray, ref: np.ndarray) -> tuple[int, int, int]:
    """(|P|, |G|, |P∩G|) as Python ints."""
    return int(pred.sum()), int(ref.sum()), int(np.logical_and(pred, ref).sum())


def mask_volume_ml(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Volume of the mask in millilitres: voxel count times voxel volume (mm³)."""
    return float(_as_mask(mask).sum()) * float(np.prod(spacing)) / _MM3_PER_ML


def _overlap_metric(
    name: str,
    formula: Callable[[int, int, int], float],
    pred: np.ndarray,
    ref: np.ndarray,
    convention: EmptyConvention | str = EmptyConvention.NNUNET,
) -> float:
    """`formula(|P|, |G|, |P∩G|)` when both masks have voxels, else the empty-mask policy's value."""
    pred, ref = _as_mask(pred), _as_mask(ref)
    if (value := empty_mask_value(name, emptiness(pred, ref), convention)) is not None:
        return value
    return formula(*_overlap_counts(pred, ref))


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


# --- surface distances (MONAI) ------------------------------------------------------


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
    pred, ref = _as_mask(pred), _as_mask(ref)
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
    pred, ref = _as_mask(pred), _as_mask(ref)
    _check_spacing(pred, spacing)
    if (value := empty_mask_value("surface_dice", emptiness(pred, ref), convention)) is not None:
        return value
    from monai.metrics import compute_surface_dice

    return _monai_distance_metric(
        compute_surface_dice, pred, ref, spacing, class_thresholds=[float(tolerance_mm)], use_subvoxels=True
    )


# --- lesion detection ---------------------------------------------------------------


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
    mask = _as_mask(mask)
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
    pred, ref = _as_mask(pred), _as_mask(ref)
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


# --- paper protocol -----------------------------------------------------------------


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
    pred, ref = _as_mask(pred_mask), _as_mask(ref_mask)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and reference {ref.shape} differ in shape")
    if not 0 <= slice_axis < ref.ndim:
        raise ValueError(f"slice_axis {slice_axis} is not an axis of masks of shape {ref.shape}")
    pred, ref = np.moveaxis(pred, slice_axis, 0), np.moveaxis(ref, slice_axis, 0)
    tumour_slices = ref.reshape(ref.shape[0], -1).any(axis=1)
    if not tumour_slices.any():
        return PaperProtocolScores(math.nan, math.nan, 0)
    n_pred, n_ref, n_both = _overlap_counts(pred[tumour_slices], ref[tumour_slices])
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


# --- DSC by tumour size -------------------------------------------------------------


def dsc_by_volume_tercile(reference_volumes_ml: Sequence[float], dsc_values: Sequence[float]) -> pd.DataFrame:
    """Mean DSC of the small, medium and large thirds of the cases by reference volume.

    Cases without reference volume (0 mL: no tumour) are left out. The rest are sorted
    by volume (stably, so ties keep their input order) and cut into three groups whose
    sizes differ by at most one, the larger groups first. DSC is averaged NaN-aware.
    Columns: tercile, n_cases, n_valid, volume_min_ml, volume_max_ml, mean_dsc.
    """
    volumes = np.asarray(reference_volumes_ml, dtype=float)
    dsc_array = np.asarray(dsc_values, dtype=float)
    if volumes.shape != dsc_array.shape:
        raise ValueError(f"{volumes.size} volumes but {dsc_array.size} DSC values")
    with_tumour = volumes > 0
    volumes, dsc_array = volumes[with_tumour], dsc_array[with_tumour]
    if volumes.size < len(TERCILE_NAMES):
        raise ValueError(f"need at least 3 cases with reference volume, got {volumes.size}")
    groups = np.array_split(np.argsort(volumes, kind="stable"), len(TERCILE_NAMES))
    rows = [
        {
            "tercile": name,
            "n_cases": len(group),
            "n_valid": int(np.isfinite(dsc_array[group]).sum()),
            "volume_min_ml": float(volumes[group].min()),
            "volume_max_ml": float(volumes[group].max()),
            "mean_dsc": _nanmean(dsc_array[group]),
        }
        for name, group in zip(TERCILE_NAMES, groups)
    ]
    return pd.DataFrame(rows)


def _nanmean(values: np.ndarray) -> float:
    """Mean of the finite values; NaN (without a warning) when there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


# --- one case -----------------------------------------------------------------------


def evaluate_masks(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float],
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
    convention: EmptyConvention | str = EmptyConvention.NNUNET,
    lesion_iou_threshold: float | None = None,
    connectivity: int | None = None,
) -> dict[str, float]:
    """Every metric of one class or region, as one flat dict."""
    pred, ref = _as_mask(pred), _as_mask(ref)
    metrics = {
        "dsc": dice(pred, ref, convention),
        "rvd": relative_volume_difference(pred, ref),
        "abs_rvd": absolute_relative_volume_difference(pred, ref),
        "voe": volumetric_overlap_error(pred, ref, convention),
        "hd95": hd95(pred, ref, spacing, convention),
        "surface_dice": surface_dice(pred, ref, spacing, tolerance_mm, convention),
        "reference_volume_ml": mask_volume_ml(ref, spacing),
        "predicted_volume_ml": mask_volume_ml(pred, spacing),
    }
    detection = lesion_detection(pred, ref, lesion_iou_threshold, connectivity, convention)
    return metrics | detection.as_flat_dict()


def tolerance_of(tolerance_mm: float | Mapping[LabelOrRegion, float], region: LabelOrRegion) -> float:
    if isinstance(tolerance_mm, Mapping):
        return float(tolerance_mm.get(region, DEFAULT_TOLERANCE_MM))
    return float(tolerance_mm)


def evaluate_case(
    pred_labelmap: np.ndarray,
    ref_labelmap: np.ndarray,
    spacing: Sequence[float],
    labels_or_regions: Sequence[LabelOrRegion],
    tolerance_mm: float | Mapping[LabelOrRegion, float] = DEFAULT_TOLERANCE_MM,
    *,
    convention: EmptyConvention | str = EmptyConvention.NNUNET,
    lesion_iou_threshold: float | None = None,
    connectivity: int | None = None,
) -> dict[LabelOrRegion, dict[str, float]]:
    """Metrics of every label or region of one case: {label_or_region: {metric: value}}.

    Regions are tuples of label values, as nnU-Net's label manager gives them; masks
    come from nnU-Net's own `region_or_label_to_mask`. `tolerance_mm` (surface Dice) is one
    value for every class, or one per class ({label_or_region: mm}, the default for those missing).
    """
    pred_labelmap, ref_labelmap = np.asarray(pred_labelmap), np.asarray(ref_labelmap)
    if pred_labelmap.shape != ref_labelmap.shape:
        raise ValueError(f"prediction {pred_labelmap.shape} and reference {ref_labelmap.shape} differ in shape")
    return {
        region: evaluate_masks(
            region_or_label_to_mask(pred_labelmap, region),
            region_or_label_to_mask(ref_labelmap, region),
            spacing,
            tolerance_of(tolerance_mm, region),
            convention,
            lesion_iou_threshold,
            connectivity,
        )
        for region in labels_or_regions
    }
