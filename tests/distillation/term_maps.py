"""Synthetic U-Net maps and geometries shared by the distillation term tests (a helper module, not a
test module: test modules import from here, never from one another)."""

import torch

from nnunetv2_hlfd.distillation.maps import DistillationGeometry, NetworkGeometry, UNetMaps

CLASSES = 3
TEACHER_CHANNELS = (8, 16, 32, 64, 64)
STUDENT_CHANNELS = (4, 8, 16, 32, 32)


def random_maps(channels, size, requires_grad=False, classes=CLASSES, batch=2, seed=0):
    """Encoder stages E(k) halving `size` per stage and an output O(k) beside every stage but the last."""
    generator = torch.Generator().manual_seed(seed)
    encoder, outputs = [], []
    for k, c in enumerate(channels):
        stage_size = [s // 2**k for s in size]
        encoder.append(torch.randn(batch, c, *stage_size, generator=generator).requires_grad_(requires_grad))
        if k < len(channels) - 1:
            outputs.append(torch.randn(batch, classes, *stage_size, generator=generator).requires_grad_(requires_grad))
    return UNetMaps(encoder, outputs)


def geometry(dims, teacher=TEACHER_CHANNELS, student=STUDENT_CHANNELS, regions=False, ignore_label=None):
    return DistillationGeometry(
        NetworkGeometry(teacher, dims), NetworkGeometry(student, dims), CLASSES, regions, ignore_label
    )
