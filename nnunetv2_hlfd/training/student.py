"""The ResNet18-style student of HLFD_SPEC.md, derived from the teacher's nnU-Net plans.

It is a ResidualEncoderUNet with the plan's patch, strides and stages, BasicBlock stages of
1, 2, 2, ... blocks, one convolution per decoder stage, and the widest widths (at most half
the plan's, `StudentSize`) whose parameters and multiply-adds per patch fit a budget relative to
the plan's own network. The derivation is a pure function of the plans, so nnUNetv2_predict
rebuilds the same network. Other student families (`StudentFamily`; student_mobile.py) share the
plan's stages, the width search and the budget.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Callable

from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager
from torch import nn

from nnunetv2_hlfd.models.cost import ModelCost, model_cost

STUDENT_ARCH_CLASS = "nnunetv2_hlfd.training.student.ResNetStudentUNet"
# Width factors tried below StudentSize.width_factor, in steps of 1/64 of the plan's widths.
WIDTH_STEPS = 64
# Keys whose meaning is the same in PlainConvUNet and ResidualEncoderUNet plans.
_INHERITED_KEYS = (
    "n_stages",
    "conv_op",
    "kernel_sizes",
    "strides",
    "conv_bias",
    "norm_op",
    "norm_op_kwargs",
    "dropout_op",
    "dropout_op_kwargs",
    "nonlin",
    "nonlin_kwargs",
)


@dataclass(frozen=True)
class StudentSize:
    """The student's widths are at most `width_factor` of the plan's per stage, narrowed (in steps of
    1/64) until its parameters and its multiply-adds per patch are both at most `budget` times the
    plan's own network's. The defaults are HLFD's student: half widths, at most 35%."""

    width_factor: float = 0.5
    budget: float = 0.35

    def __post_init__(self):
        if not 0 < self.width_factor <= 4:
            raise ValueError(
                f"StudentSize width_factor is {self.width_factor}; it must be in (0, 4] "
                f"(a fraction of the plan's widths, 0.5 = half)."
            )
        if not self.budget > 0:
            raise ValueError(
                f"StudentSize budget is {self.budget}; it must be > 0 (a fraction of the plan's network, 0.35 = 35%)."
            )


class ReturnsEncoderMaps:
    """The forward of every student family: a U-Net (`encoder`, `decoder` in the interface of
    dynamic-network-architectures' UNetDecoder) that can also return its encoder stages.

    Taking the stages from forward (rather than a hook or a second encoder call) keeps
    the student one module for DDP and torch.compile.
    """

    def forward(self, x, return_encoder_maps: bool = False):
        """The decoder's outputs (as nnU-Net's deep supervision is set); with `return_encoder_maps`, every
        head O(0) .. O(N-2) and the encoder stages, for the distillation terms."""
        skips = self.encoder(x)
        if not return_encoder_maps:
            return self.decoder(skips)
        return self.all_heads(skips), skips

    def all_heads(self, skips) -> list:
        """O(0) .. O(N-2) even with nnU-Net's deep supervision off: terms read the middle heads (IPD)
        whether or not the segmentation loss supervises them."""
        if self.decoder.deep_supervision:
            return self.decoder(skips)  # the usual case: nothing switched, so a compiled forward sees no change
        self.decoder.deep_supervision = True
        try:
            return self.decoder(skips)
        finally:
            self.decoder.deep_supervision = False


class ResNetStudentUNet(ReturnsEncoderMaps, ResidualEncoderUNet):
    """A ResidualEncoderUNet that can also return its encoder stages; its weights are exactly those of
    ResidualEncoderUNet."""


def plan_stages(teacher_arch_kwargs: dict, width_factor: float) -> dict:
    """Every family's keywords from the plan: its stages, strides, kernels, norm and nonlinearity,
    `width_factor` of its widths, and ResNet18's block count per stage."""
    n_stages = teacher_arch_kwargs["n_stages"]
    kwargs = {key: teacher_arch_kwargs[key] for key in _INHERITED_KEYS}
    kwargs["features_per_stage"] = [max(1, int(f * width_factor)) for f in teacher_arch_kwargs["features_per_stage"]]
    kwargs["n_blocks_per_stage"] = [1] + [2] * (n_stages - 1)  # ResNet18's 2-2-2-2 after a 1-block stem stage
    return kwargs


def student_arch_kwargs(teacher_arch_kwargs: dict, width_factor: float) -> dict:
    """The student's network keywords: the plan's stages, `width_factor` of its widths, ResNet18's blocks."""
    kwargs = plan_stages(teacher_arch_kwargs, width_factor)
    kwargs["n_conv_per_stage_decoder"] = [1] * (teacher_arch_kwargs["n_stages"] - 1)
    return kwargs


@dataclass(frozen=True)
class StudentFamily:
    """A kind of student network: its class (as nnU-Net's plans name one) and its keywords from the
    plan's at a width factor. The width search, the budget and the trainers are the same for every family."""

    name: str
    arch_class: str
    arch_kwargs: Callable[[dict, float], dict]


RESNET18_STYLE = StudentFamily("ResNet18-style", STUDENT_ARCH_CLASS, student_arch_kwargs)


def build_student(
    configuration_manager: ConfigurationManager,
    num_input_channels: int,
    num_output_channels: int,
    enable_deep_supervision: bool = True,
    size: StudentSize = StudentSize(),
    family: StudentFamily = RESNET18_STYLE,
) -> nn.Module:
    cm = configuration_manager
    width_factor = student_width_factor(cm, num_input_channels, num_output_channels, size, family)
    return _build(
        family,
        cm.network_arch_init_kwargs,
        cm.network_arch_init_kwargs_req_import,
        width_factor,
        num_input_channels,
        num_output_channels,
        enable_deep_supervision,
    )


def _build(
    family: StudentFamily,
    plan_arch_kwargs: dict,
    requires_import,
    width_factor: float,
    num_input_channels: int,
    num_output_channels: int,
    enable_deep_supervision: bool = True,
) -> nn.Module:
    return get_network_from_plans(
        family.arch_class,
        family.arch_kwargs(plan_arch_kwargs, width_factor),
        requires_import,
        num_input_channels,
        num_output_channels,
        allow_init=True,
        deep_supervision=enable_deep_supervision,
    )


def student_width_factor(
    configuration_manager: ConfigurationManager,
    num_input_channels: int,
    num_output_channels: int,
    size: StudentSize = StudentSize(),
    family: StudentFamily = RESNET18_STYLE,
) -> float:
    """The largest width factor, `size.width_factor` or a multiple of 1/64 below it, whose `family` student fits
    `size.budget` of the plan's network in parameters and in multiply-adds per patch (both measured)."""
    cm = configuration_manager
    plan_key = json.dumps(
        {
            "arch": cm.network_arch_class_name,
            "kwargs": cm.network_arch_init_kwargs,
            "imports": list(cm.network_arch_init_kwargs_req_import),
            "patch": list(cm.patch_size),
        },
        sort_keys=True,
    )
    return _width_factor(plan_key, num_input_channels, num_output_channels, size, family)


@functools.lru_cache(maxsize=64)
def _width_factor(
    plan_key: str, num_input_channels: int, num_output_channels: int, size: StudentSize, family: StudentFamily
) -> float:
    """Cached: training, logging and prediction each derive the student, and each search counts
    several networks (about a second on a CPU)."""
    plan = json.loads(plan_key)
    shape = (1, num_input_channels, *plan["patch"])
    reference = model_cost(
        lambda: get_network_from_plans(
            plan["arch"],
            plan["kwargs"],
            plan["imports"],
            num_input_channels,
            num_output_channels,
            deep_supervision=True,
        ),
        shape,
    )

    def fits(width_factor: float) -> bool:
        cost = model_cost(
            lambda: _build(
                family, plan["kwargs"], plan["imports"], width_factor, num_input_channels, num_output_channels
            ),
            shape,
        )
        return within_budget(cost, reference, size.budget)

    candidates = [k / WIDTH_STEPS for k in range(1, WIDTH_STEPS * 4) if k / WIDTH_STEPS < size.width_factor]
    candidates.append(size.width_factor)
    if fits(candidates[-1]):
        return candidates[-1]  # the usual case: nnU-Net's default plans take half widths
    if not fits(candidates[0]):
        raise ValueError(
            f"No {family.name} student fits {size.budget:.0%} of this plan's network "
            f"({plan['arch'].rsplit('.', 1)[-1]}, patch {plan['patch']}): even widths of "
            f"{candidates[0]:g} of the plan's cost more. Raise StudentSize.budget."
        )
    low, high = 0, len(candidates) - 2  # candidates[low] fits; the cost grows with the width factor
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(candidates[middle]) else (low, middle - 1)
    return candidates[low]


def within_budget(student: ModelCost, reference: ModelCost, budget: float) -> bool:
    return (
        student.parameters <= budget * reference.parameters
        and student.macs_per_patch <= budget * reference.macs_per_patch
    )
