"""What the terms read from a U-Net: its encoder stages and its segmentation heads.

Names follow HLFD_SPEC.md: E(k) is encoder stage k (E0 at full resolution, E(N-1) the
bottleneck); O(k) is the head's logits at the resolution of E(k), O(0) the final output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from dynamic_network_architectures.building_blocks.helper import convert_conv_op_to_dim
from torch import Tensor, nn

from nnunetv2_hlfd.models.model_plans import total_stride


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
    # The bottleneck's downsampling per axis (None where a caller does not know it). Not compared: it decides
    # which terms apply, not the adapters' sizes, and a resumed run builds its terms from the checkpoint's.
    total_stride: tuple[int, ...] | None = field(default=None, compare=False)

    @property
    def num_stages(self) -> int:
        return len(self.encoder_channels)

    @classmethod
    def of(cls, network: nn.Module) -> "NetworkGeometry":
        encoder = network.encoder
        dims = convert_conv_op_to_dim(encoder.conv_op)
        channels = tuple(int(c) for c in encoder.output_channels)
        return cls(channels, dims, total_stride(encoder.strides, dims))

    def bottleneck_size(self, patch_size: tuple[int, ...] | None) -> tuple[int, ...] | None:
        """The bottleneck's spatial size for this patch, or None when patch or stride is unknown."""
        if patch_size is None or self.total_stride is None:
            return None
        return tuple(max(1, p // s) for p, s in zip(patch_size, self.total_stride))


@dataclass(frozen=True)
class DistillationGeometry:
    teacher: NetworkGeometry
    student: NetworkGeometry
    num_classes: int  # segmentation heads: classes, or regions for sigmoid outputs
    regions: bool
    ignore_label: int | None = None  # nnU-Net's ignore label (sparse annotations), if the dataset has one
    # The training patch, when the trainer passes it; not compared, as the strides.
    patch_size: tuple[int, ...] | None = field(default=None, compare=False)

    @property
    def teacher_bottleneck_size(self) -> tuple[int, ...] | None:
        return self.teacher.bottleneck_size(self.patch_size)

    def to_dict(self) -> dict:
        return {
            "teacher": list(self.teacher.encoder_channels),
            "student": list(self.student.encoder_channels),
            "spatial_dims": self.student.spatial_dims,
            "num_classes": self.num_classes,
            "regions": self.regions,
            "ignore_label": self.ignore_label,
            "patch_size": _list_or_none(self.patch_size),
            "teacher_total_stride": _list_or_none(self.teacher.total_stride),
            "student_total_stride": _list_or_none(self.student.total_stride),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "DistillationGeometry":
        dims = d["spatial_dims"]
        return cls(
            NetworkGeometry(tuple(d["teacher"]), dims, _tuple_or_none(d["teacher_total_stride"])),
            NetworkGeometry(tuple(d["student"]), dims, _tuple_or_none(d["student_total_stride"])),
            d["num_classes"],
            d["regions"],
            d["ignore_label"],
            _tuple_or_none(d["patch_size"]),
        )


def _list_or_none(values: tuple[int, ...] | None) -> list[int] | None:
    return None if values is None else list(values)


def _tuple_or_none(values: list[int] | None) -> tuple[int, ...] | None:
    return None if values is None else tuple(values)


# What a distillation term reads from the teacher (DistillationTerm.teacher_reads).
TEACHER_ENCODER, TEACHER_OUTPUTS = "encoder", "outputs"
READS_ENCODER, READS_OUTPUTS = frozenset({TEACHER_ENCODER}), frozenset({TEACHER_OUTPUTS})
READS_ENCODER_AND_OUTPUTS = READS_ENCODER | READS_OUTPUTS


def teacher_maps(teacher: nn.Module, data: Tensor, reads: frozenset[str] = READS_ENCODER_AND_OUTPUTS) -> UNetMaps:
    """Run a frozen nnU-Net U-Net's encoder, and its decoder only when `reads` has its outputs."""
    skips = teacher.encoder(data)
    if TEACHER_OUTPUTS not in reads:
        return UNetMaps(encoder=skips, outputs=[])  # feature-only methods: the decoder's cost is saved
    outputs = teacher.decoder(skips)
    return UNetMaps(encoder=skips, outputs=outputs if isinstance(outputs, (list, tuple)) else [outputs])
