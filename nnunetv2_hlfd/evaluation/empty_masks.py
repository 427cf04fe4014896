"""What every metric scores where a mask is empty: one table (`EMPTY_MASK_RULES`, printed in `metrics`' docstring),
never the formula or the distance library, which are used only when both masks have voxels. `EmptyConvention`
picks what "both empty" scores: NNUNET (default, as nnU-Net's compute_metrics: NaN, so nanmean leaves the case out)
or KITS (as the KiTS challenges: a perfect score).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np


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
WORST_DISTANCE = math.inf


EMPTY_MASK_RULES: dict[str, EmptyMaskRule] = {
    "dsc": EmptyMaskRule(_NAN, 1.0, 0.0, 0.0),
    "surface_dice": EmptyMaskRule(_NAN, 1.0, 0.0, 0.0),
    "voe": EmptyMaskRule(_NAN, 0.0, 1.0, 1.0),
    "rvd": EmptyMaskRule(_NAN, _NAN, _NAN, -1.0),
    "abs_rvd": EmptyMaskRule(_NAN, _NAN, _NAN, 1.0),
    "hd95": EmptyMaskRule(_NAN, 0.0, WORST_DISTANCE, WORST_DISTANCE),
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
    is `EMPTY_MASK_RULES` and is documented in `metrics`' docstring.
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
    return worst_distance_mm if value == WORST_DISTANCE else value
