"""What the terms read from a U-Net: its encoder stages and its segmentation heads.

Names follow HLFD_SPEC.md: E(k) is encoder stage k (E0 at full resolution, E(N-1) the
bottleneck); O(k) is the head's logits at the resolution of E(k), O(0) the final output.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from dynamic_network_architectures.building_blocks.helper import convert_conv_op_to_dim
from torch import Tensor, nn


@dataclass
class UNetMaps:
    encoder: Sequence[Tensor]  # E0 .. E(N-1)
    outputs: Sequence[Tensor]  # O(0) .. O(N-2), as nnU-Net's deep-supervision list

    @property
    def num_stages(self) -> int:
        return len(self.encoder)


@dataclass(frozen=True)
class NetworkGeometry:
    """The shape facts of a U-Net that decide which terms apply and how adapters are sized."""
    encoder_channels: tuple[int, ...]
    spatial_dims: int

    @property
    def num_stages(self) -> int:
        return len(self.encoder_channels)

    @classmethod
    def of(cls, network: nn.Module) -> "NetworkGeometry":
        encoder = network.encoder
        return cls(tuple(int(c) for c in encoder.output_channels), convert_conv_op_to_dim(encoder.conv_op))


@dataclass(frozen=True)
class DistillationGeometry:
    teacher: NetworkGeometry
    student: NetworkGeometry
    num_classes: int  # segmentation heads: classes, or regions for sigmoid outputs
    regions: bool
    ignore_label: int | None = None  # nnU-Net's ignore label (sparse annotations), if the dataset has one

    def to_dict(self) -> dict:
        return {"teacher": list(self.teacher.encoder_channels), "student": list(self.student.encoder_channels),
                "spatial_dims": self.student.spatial_dims, "num_classes": self.num_classes, "regions": self.regions,
                "ignore_label": self.ignore_label}

    @classmethod
    def from_dict(cls, d: dict) -> "DistillationGeometry":
        dims = d["spatial_dims"]
        return cls(NetworkGeometry(tuple(d["teacher"]), dims), NetworkGeometry(tuple(d["student"]), dims),
                   d["num_classes"], d["regions"], d.get("ignore_label"))


# What a distillation term reads from the teacher (DistillationTerm.teacher_reads).
TEACHER_ENCODER, TEACHER_OUTPUTS = "encoder", "outputs"


def teacher_maps(teacher: nn.Module, data: Tensor,
                 reads: frozenset[str] = frozenset({TEACHER_ENCODER, TEACHER_OUTPUTS})) -> UNetMaps:
    """Run a frozen nnU-Net U-Net's encoder, and its decoder only when `reads` has its outputs."""
    skips = teacher.encoder(data)
    if TEACHER_OUTPUTS not in reads:
        return UNetMaps(encoder=skips, outputs=[])  # feature-only methods: the decoder's cost is saved
    outputs = teacher.decoder(skips)
    return UNetMaps(encoder=skips, outputs=outputs if isinstance(outputs, (list, tuple)) else [outputs])
