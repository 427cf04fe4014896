"""Per-case segmentation metrics of one prediction against one reference: every metric of every class of one case
(`evaluate_case`). The metrics themselves, one kind per module: `overlap_metrics` (dsc, rvd, abs_rvd, voe, volumes),
`surface_metrics` (hd95, surface_dice, by MONAI), `lesion_metrics` (lesion_*), `paper_metrics` (the reference
HLFD code's tumour scores); what each scores on empty masks is one table, `empty_masks`.

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
`empty_masks.empty_mask_value`, never from the formula or the distance library. The formula is
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

The paper protocol (`paper_metrics.paper_protocol_scores`) reproduces the reference HLFD code and has
its own, smoothed, handling; see there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from nnunetv2.evaluation.evaluate_predictions import region_or_label_to_mask

from nnunetv2_hlfd.evaluation.empty_masks import EmptyConvention
from nnunetv2_hlfd.evaluation.lesion_metrics import lesion_detection
from nnunetv2_hlfd.evaluation.overlap_metrics import (
    absolute_relative_volume_difference,
    as_mask,
    dice,
    mask_volume_ml,
    relative_volume_difference,
    volumetric_overlap_error,
)
from nnunetv2_hlfd.evaluation.settings import DEFAULT_TOLERANCE_MM
from nnunetv2_hlfd.evaluation.surface_metrics import hd95, surface_dice

LabelOrRegion = int | tuple[int, ...]


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
    pred, ref = as_mask(pred), as_mask(ref)
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
