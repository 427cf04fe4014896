"""nnU-Net's training target, read the way label-aware distillation terms need it.

nnU-Net hands the loss a label map (B, 1, *spatial) for softmax datasets, or region
masks (B, R, *spatial) for region datasets; with an ignore label, a label map holds the
ignore value at unannotated voxels and region masks carry one extra last channel that
marks them (see nnU-Net's DC_and_CE_loss / DC_and_BCE_loss). Terms that use labels
read them only through `class_masks`, so every term treats ignored voxels alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nnunetv2_hlfd.distillation.maps import DistillationGeometry


def class_masks(target: Tensor, geometry: DistillationGeometry) -> tuple[Tensor, Tensor]:
    """(per-class masks (B, C, *spatial), annotated-voxel mask (B, 1, *spatial)), both float.

    C is the number of segmentation heads: one-hot classes for label maps, the regions
    themselves for region datasets. Ignored voxels are zero in both.
    """
    if geometry.regions:
        if geometry.ignore_label is None:
            return target.float(), torch.ones_like(target[:, :1], dtype=torch.float32)
        annotated = 1 - target[:, -1:].float()
        return target[:, :-1].float() * annotated, annotated
    labels = target[:, 0].long()
    annotated = (
        torch.ones_like(labels, dtype=torch.bool) if geometry.ignore_label is None else labels != geometry.ignore_label
    )
    one_hot = F.one_hot(torch.where(annotated, labels, 0), geometry.num_classes)
    one_hot = one_hot.movedim(-1, 1).float() * annotated.unsqueeze(1)
    return one_hot, annotated.unsqueeze(1).float()
