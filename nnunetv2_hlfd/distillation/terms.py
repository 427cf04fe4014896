"""The distillation terms, each a module registered by its paper name.

A term is built from the teacher/student geometry and the method's configuration; its
trainable adapters (if any) are submodules, so they are optimised, saved and restored
with the engine. `skip_reason` says when a network is too shallow for the term.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from dynamic_network_architectures.building_blocks.helper import convert_dim_to_conv_op
from torch import Tensor, nn

from nnunetv2_hlfd.distillation.config import DistillationConfig
from nnunetv2_hlfd.distillation.functional import (area_attention_map, attention_distance, attention_map,
                                                   attention_transfer, kl_to_teacher, prediction_kl, resize,
                                                   smallest_spatial_size, spatial_size)
from nnunetv2_hlfd.distillation.maps import TEACHER_ENCODER, TEACHER_OUTPUTS, DistillationGeometry, UNetMaps

TERMS: dict[str, type["DistillationTerm"]] = {}


def register_term(cls: type["DistillationTerm"]) -> type["DistillationTerm"]:
    TERMS[cls.name] = cls
    return cls


class DistillationTerm(nn.Module):
    name: str = ""
    # The teacher maps forward reads; the teacher skips its decoder when no term reads outputs.
    teacher_reads: frozenset[str] = frozenset({TEACHER_ENCODER, TEACHER_OUTPUTS})

    def __init__(self, geometry: DistillationGeometry, config: DistillationConfig):
        super().__init__()
        self.geometry = geometry
        self.config = config

    # (network, stage range as a function of its stage count) the term reads; skipped when empty.
    required_stages: tuple[str, Callable[[int], range]] | None = None

    @classmethod
    def skip_reason(cls, geometry: DistillationGeometry) -> str | None:
        """Why this term cannot apply to these networks, or None when it can."""
        if cls.required_stages is None:
            return None
        network, stages = cls.required_stages
        n = getattr(geometry, network).num_stages
        return _empty_range_reason(stages(n), network, n)

    def forward(self, student: UNetMaps, teacher: UNetMaps, target: Tensor | None = None) -> Tensor:
        """`target` is nnU-Net's full-resolution training target: a label map (B, 1, *spatial), or
        region masks (B, R, *spatial) for region datasets. Terms that do not use labels ignore it."""
        raise NotImplementedError


# Stage ranges of HLFD_SPEC.md, as functions of a network's number of stages N.
def middle_encoder_stages(num_stages: int) -> range:
    return range(1, num_stages - 1)  # E1 .. E(N-2)


def teacher_middle_outputs(num_stages: int) -> range:
    return range(1, num_stages - 2)  # O(1) .. O(N-3); O(N-2) is too coarse to be a prediction


def student_middle_outputs(num_stages: int) -> range:
    return range(1, num_stages - 1)  # O(1) .. O(N-2)


def _empty_range_reason(stage_range: range, what: str, num_stages: int) -> str | None:
    return None if len(stage_range) else f"the {what} has {num_stages} stages, too few for this term"


@register_term
class UFD(DistillationTerm):
    """Unified feature distillation: teacher middle encoder stages -> student E0 (attention)."""
    name = "UFD"
    required_stages = ("teacher", middle_encoder_stages)
    teacher_reads = frozenset({TEACHER_ENCODER})

    def forward(self, student, teacher, target=None):
        middle = [teacher.encoder[k] for k in middle_encoder_stages(teacher.num_stages)]
        common = smallest_spatial_size(middle)
        unified = torch.cat([resize(m.float(), common) for m in middle], dim=1)
        target_size = spatial_size(student.encoder[0])
        target = attention_map(unified, self.config.attention_p, size=target_size)
        return attention_transfer(student.encoder[0], target, self.config.attention_p)


# How IFD brings each student stage to the teacher bottleneck's grid (its option "student_shrink").
IFD_STUDENT_SHRINKS = ("bilinear", "area")


@register_term
class IFD(DistillationTerm):
    """Individual feature distillation: teacher bottleneck -> every student middle encoder stage.

    Option "student_shrink": "bilinear" (default, the paper's and the reference code's) resizes each
    student stage's features to the bottleneck's size, then takes their attention; "area" takes each
    stage's attention at its own resolution and area-averages it to the bottleneck's grid, so every
    student voxel gets gradient (bilinear shrinking reaches a few percent of them).
    """
    name = "IFD"
    required_stages = ("student", middle_encoder_stages)
    teacher_reads = frozenset({TEACHER_ENCODER})

    def __init__(self, geometry, config):
        super().__init__(geometry, config)
        self.student_shrink = config.option(self.name, "student_shrink", "bilinear")
        if self.student_shrink not in IFD_STUDENT_SHRINKS:
            raise ValueError(f"IFD option student_shrink is {self.student_shrink!r}; use one of {IFD_STUDENT_SHRINKS}.")

    @classmethod
    def skip_reason(cls, geometry):
        bottleneck = geometry.teacher_bottleneck_size
        if bottleneck is not None and math.prod(bottleneck) == 1:
            # The attention of a single position is 1 for every map: the term is identically 0.
            return (f"the teacher's bottleneck is a single voxel (patch {list(geometry.patch_size)} / total stride "
                    f"{list(geometry.teacher.total_stride)}), where attention is the same for every map")
        return super().skip_reason(geometry)

    def forward(self, student, teacher, target=None):
        bottleneck = teacher.encoder[-1]
        target = attention_map(bottleneck, self.config.attention_p)
        p, size = self.config.attention_p, spatial_size(bottleneck)
        middle = [student.encoder[k] for k in middle_encoder_stages(student.num_stages)]
        if self.student_shrink == "area":
            return sum(attention_distance(area_attention_map(stage, p, size), target) for stage in middle)
        return sum(attention_transfer(stage, target, p, target_size=size) for stage in middle)


def _one_by_one_conv(spatial_dims: int, in_channels: int, out_channels: int) -> nn.Module:
    return convert_dim_to_conv_op(spatial_dims)(in_channels, out_channels, kernel_size=1)


def pointwise(conv: nn.Module, x: Tensor) -> Tensor:
    """A 1x1 convolution as one batched matrix product over positions: the same value, 3-7x faster
    forward and backward on the CPU than mkldnn's convolution for a projection to a few classes."""
    weight = conv.weight.flatten(1)
    y = torch.bmm(weight.expand(x.shape[0], -1, -1), x.flatten(2))
    return (y + conv.bias.view(1, -1, 1)).view(x.shape[0], weight.shape[0], *spatial_size(x))


@register_term
class UPD(DistillationTerm):
    """Unified pixel distillation: the average of the teacher's middle-scale predictions -> the student's
    E0, mapped to the classes by a trained 1x1 convolution.

    The unified teacher map is the target and has no parameters: a fusion trained by this KL co-adapts
    with the projection until both are uniform (docs/METHODS.md, UPD). The average is the fusion the
    paper's 1x1 convolution starts from.
    """
    name = "UPD"
    required_stages = ("teacher", teacher_middle_outputs)
    teacher_reads = frozenset({TEACHER_OUTPUTS})

    def __init__(self, geometry, config):
        super().__init__(geometry, config)
        dims, classes = geometry.student.spatial_dims, geometry.num_classes
        self.student_projection = _one_by_one_conv(dims, geometry.student.encoder_channels[0], classes)

    def unified_teacher_map(self, teacher: UNetMaps) -> Tensor:
        """The mean of the teacher's logits O(1) .. O(N-3), each upsampled to full resolution."""
        full = spatial_size(teacher.outputs[0])
        middle = teacher_middle_outputs(teacher.num_stages)
        return sum(resize(teacher.outputs[k].float(), full) for k in middle) / len(middle)

    def forward(self, student, teacher, target=None):
        teacher_map = self.unified_teacher_map(teacher)
        student_map = pointwise(self.student_projection, resize(student.encoder[0].float(), spatial_size(teacher_map)))
        return prediction_kl(student_map, teacher_map, self.config.temperature, self.geometry.regions)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints written before the fusion was fixed hold its KL-trained (collapsed) weights: dropped.
        for key in [k for k in state_dict if k.startswith(prefix + "teacher_fusion.")]:
            del state_dict[key]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


@register_term
class IPD(DistillationTerm):
    """Individual pixel distillation: teacher final output -> every student middle-scale head."""
    name = "IPD"
    required_stages = ("student", student_middle_outputs)
    teacher_reads = frozenset({TEACHER_OUTPUTS})

    def forward(self, student, teacher, target=None):
        final = teacher.outputs[0]
        full, t, regions = spatial_size(final), self.config.temperature, self.geometry.regions
        heads = [resize(student.outputs[k].float(), full) for k in student_middle_outputs(student.num_stages)]
        return kl_to_teacher(heads, final, t, regions)
