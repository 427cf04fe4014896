"""The distillation terms, each a module registered by its paper name.

A term is built from the teacher/student geometry and the method's configuration; its
trainable adapters (if any) are submodules, so they are optimised, saved and restored
with the engine. `skip_reason` says when a network is too shallow for the term (or the term would
be identically 0 on it); `options` declares the term's own settings and `option` reads them. The
peer methods' terms are in the peer_*.py modules; distillation/__init__.py imports them all, so every term is
in TERMS once the package is imported.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
from dynamic_network_architectures.building_blocks.helper import convert_dim_to_conv_op
from torch import Tensor, nn

from nnunetv2_hlfd.distillation import fast_paths
from nnunetv2_hlfd.distillation.config import DistillationConfig, DistillationConfigError, TermOption
from nnunetv2_hlfd.distillation.functional import (
    area_attention_map,
    attention_distance,
    attention_map,
    attention_transfer,
    kl_divergence,
    resize,
    smallest_spatial_size,
    spatial_size,
)
from nnunetv2_hlfd.distillation.maps import (
    READS_ENCODER,
    READS_ENCODER_AND_OUTPUTS,
    READS_OUTPUTS,
    DistillationGeometry,
    UNetMaps,
)

TERMS: dict[str, type["DistillationTerm"]] = {}  # filled as distillation/__init__.py imports the term modules


def register_term(cls: type["DistillationTerm"]) -> type["DistillationTerm"]:
    TERMS[cls.name] = cls
    return cls


class TermOptionError(DistillationConfigError):
    """A method gives a term a setting it does not declare, or a value the setting does not take."""


class DistillationTerm(nn.Module):
    """One term of a method's loss: `forward` gives its unweighted value from the student's and the
    teacher's maps (and the training target, for terms that read labels)."""

    name: str = ""
    # The teacher maps forward reads; the teacher skips its decoder when no term reads outputs.
    teacher_reads: frozenset[str] = READS_ENCODER_AND_OUTPUTS
    # The settings a method may give this term (DistillationConfig.options[name]); any other is refused.
    options: Mapping[str, TermOption] = {}

    def __init__(self, geometry: DistillationGeometry, config: DistillationConfig):
        super().__init__()
        self.check_options(config)
        self.geometry = geometry
        self.config = config

    @classmethod
    def check_options(cls, config: DistillationConfig) -> None:
        """Refuses a setting this term does not declare, or a value it does not take, naming the known ones."""
        given = config.options.get(cls.name, {})
        known = f"{cls.name}'s options are {sorted(cls.options)}" if cls.options else f"{cls.name} takes no options"
        problems = [
            f"{cls.name} has no option {key!r}; {known}. Correct or remove it in the trainer's `distillation`."
            for key in given
            if key not in cls.options
        ]
        for key, value in given.items():
            problem = cls.options[key].problem(value) if key in cls.options else None
            if problem:
                problems.append(f"{cls.name} option {key}={value!r} {problem}; {known}.")
        if problems:
            raise TermOptionError(problems, f"Options of the distillation term {cls.name} refused:")

    @classmethod
    def skip_reason(cls, geometry: DistillationGeometry, config: DistillationConfig) -> str | None:
        """Why this term cannot apply to these networks (e.g. too few stages), or None when it can."""
        return None

    def option(self, key: str, derived: Any = None) -> Any:
        """This term's setting `key` as the method gives it (DistillationConfig.options), else its declared
        default; a default declared None is one the term derives, `derived`."""
        value = self.config.option(self.name, key, type(self).options[key].default)
        return derived if value is None else value

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


def too_few_stages(network: str, num_stages: int, stages: Callable[[int], range]) -> str | None:
    """A skip reason for a term that reads `stages` of a network: None unless that range is empty."""
    return None if len(stages(num_stages)) else f"the {network} has {num_stages} stages, too few for this term"


def single_voxel_bottleneck(geometry: DistillationGeometry) -> str | None:
    """A skip reason for a term that compares positions of the teacher's bottleneck (attention, similarity,
    a distribution over positions): with a single position it is the same for every map, the term
    identically 0. None when the bottleneck has several positions or its size is unknown."""
    bottleneck = geometry.teacher_bottleneck_size
    if bottleneck is None or math.prod(bottleneck) > 1:
        return None
    return (
        f"the teacher's bottleneck is a single voxel (patch {list(geometry.patch_size)} / total stride "
        f"{list(geometry.teacher.total_stride)}), where a map over positions is the same for every network, "
        f"so the term is identically 0"
    )


@register_term
class UFD(DistillationTerm):
    """Unified feature distillation: teacher middle encoder stages -> student E0 (attention)."""

    name = "UFD"
    teacher_reads = READS_ENCODER

    @classmethod
    def skip_reason(cls, geometry, config):
        return too_few_stages("teacher", geometry.teacher.num_stages, middle_encoder_stages)

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
    teacher_reads = READS_ENCODER
    options = {"student_shrink": TermOption("bilinear", choices=IFD_STUDENT_SHRINKS)}

    def __init__(self, geometry, config):
        super().__init__(geometry, config)
        self.student_shrink = self.option("student_shrink")

    @classmethod
    def skip_reason(cls, geometry, config):
        return single_voxel_bottleneck(geometry) or too_few_stages(
            "student", geometry.student.num_stages, middle_encoder_stages
        )

    def forward(self, student, teacher, target=None):
        bottleneck = teacher.encoder[-1]
        target = attention_map(bottleneck, self.config.attention_p)
        p, size = self.config.attention_p, spatial_size(bottleneck)
        middle = [student.encoder[k] for k in middle_encoder_stages(student.num_stages)]
        if self.student_shrink == "area":
            return sum(attention_distance(area_attention_map(stage, p, size), target) for stage in middle)
        return sum(attention_transfer(stage, target, p, target_size=size) for stage in middle)


def one_by_one_conv(spatial_dims: int, in_channels: int, out_channels: int) -> nn.Module:
    return convert_dim_to_conv_op(spatial_dims)(in_channels, out_channels, kernel_size=1)


@register_term
class UPD(DistillationTerm):
    """Unified pixel distillation: the average of the teacher's middle-scale predictions -> the student's
    E0, mapped to the classes by a trained 1x1 convolution.

    The unified teacher map is the target and has no parameters: a fusion trained by this KL co-adapts
    with the projection until both are uniform (docs/METHODS.md, UPD). The average is the fusion the
    paper's 1x1 convolution starts from.
    """

    name = "UPD"
    teacher_reads = READS_OUTPUTS

    def __init__(self, geometry, config):
        super().__init__(geometry, config)
        dims, classes = geometry.student.spatial_dims, geometry.num_classes
        self.student_projection = one_by_one_conv(dims, geometry.student.encoder_channels[0], classes)

    @classmethod
    def skip_reason(cls, geometry, config):
        return too_few_stages("teacher", geometry.teacher.num_stages, teacher_middle_outputs)

    def unified_teacher_map(self, teacher: UNetMaps) -> Tensor:
        """The mean of the teacher's logits O(1) .. O(N-3), each upsampled to full resolution."""
        full = spatial_size(teacher.outputs[0])
        middle = teacher_middle_outputs(teacher.num_stages)
        return sum(resize(teacher.outputs[k].float(), full) for k in middle) / len(middle)

    def forward(self, student, teacher, target=None):
        teacher_map = self.unified_teacher_map(teacher)
        student_e0 = resize(student.encoder[0].float(), spatial_size(teacher_map))
        if fast_paths.measured_faster_on(student_e0.device):
            student_map = fast_paths.pointwise(self.student_projection, student_e0)  # as below, one bmm
        else:
            student_map = self.student_projection(student_e0)
        return kl_divergence(student_map, teacher_map, self.config.temperature, self.geometry.regions)


@register_term
class IPD(DistillationTerm):
    """Individual pixel distillation: teacher final output -> every student middle-scale head."""

    name = "IPD"
    teacher_reads = READS_OUTPUTS

    @classmethod
    def skip_reason(cls, geometry, config):
        return too_few_stages("student", geometry.student.num_stages, student_middle_outputs)

    def forward(self, student, teacher, target=None):
        final = teacher.outputs[0]
        full, t, regions = spatial_size(final), self.config.temperature, self.geometry.regions
        heads = [resize(student.outputs[k].float(), full) for k in student_middle_outputs(student.num_stages)]
        return kl_divergence(heads, final, t, regions)
