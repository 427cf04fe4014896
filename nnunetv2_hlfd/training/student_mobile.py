"""The inverted-residual student family (MobileNetV2 / EfficientNet-style), derived from the teacher's plans.

A U-Net with the plan's stages, strides, kernel sizes, normalisation and nonlinearity, built from
dynamic-network-architectures' blocks in the interface of its ResidualEncoderUNet: the encoder's stages
are depthwise-separable inverted residuals (1, 2, 2, ... blocks, as the ResNet18-style student), each
decoder stage a depthwise-separable transposed convolution added to the skip and one inverted residual,
with a head per stage for deep supervision. Its widths are searched as the ResNet18-style student's
(student.py: `StudentSize`, `StudentFamily`), against a budget of 10% of the plan's network.
docs/METHODS.md, "The inverted-residual student family", says where it departs from MobileNetV3 / EfficientNet.
"""

from __future__ import annotations

import functools

from dynamic_network_architectures.building_blocks.helper import get_matching_convtransp, maybe_convert_scalar_to_list
from dynamic_network_architectures.building_blocks.simple_conv_blocks import ConvDropoutNormReLU, StackedConvBlocks
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

from nnunetv2_hlfd.training.student import ReturnsEncoderMaps, StudentFamily, StudentSize, plan_stages

# MobileNetV2 and EfficientNet widen by 6, MobileNetV3 by 1 to 6: 4 spends more of the budget on width (METHODS.md).
EXPANSION = 4
# Every size of the family is at most 10% of the plan's network in parameters and in multiply-adds per patch.
MOBILE_BUDGET = 0.1
MOBILE_SIZE = StudentSize(width_factor=0.5, budget=MOBILE_BUDGET)
MOBILE_SIZE_SMALL = StudentSize(width_factor=0.25, budget=MOBILE_BUDGET)
MOBILE_SIZE_LARGE = StudentSize(width_factor=1.0, budget=MOBILE_BUDGET)


class InvertedResidualBlock(nn.Module):
    """MobileNetV2's inverted residual (Sandler et al. 2018): a 1x1 expansion to `expansion` times the input's
    channels, a depthwise convolution of the plan's kernel carrying the stride, and a linear 1x1 projection
    (normalised, no nonlinearity); the input is added where stride and channels allow."""

    def __init__(
        self,
        conv_op: type[nn.Module],
        input_channels: int,
        output_channels: int,
        kernel_size,
        stride,
        expansion: int,
        conv_bias: bool = False,
        norm_op: type[nn.Module] | None = None,
        norm_op_kwargs: dict | None = None,
        dropout_op: type[nn.Module] | None = None,
        dropout_op_kwargs: dict | None = None,
        nonlin: type[nn.Module] | None = None,
        nonlin_kwargs: dict | None = None,
    ):
        super().__init__()
        hidden = input_channels * expansion
        # Per-axis lists: ConvDropoutNormReLU takes a grouped conv_op only with sizes given per axis.
        kernel_size = maybe_convert_scalar_to_list(conv_op, kernel_size)
        stride = maybe_convert_scalar_to_list(conv_op, stride)
        norm, activation = (norm_op, norm_op_kwargs), (nonlin, nonlin_kwargs)
        self.expand = (
            ConvDropoutNormReLU(conv_op, input_channels, hidden, 1, 1, conv_bias, *norm, None, None, *activation)
            if expansion != 1
            else nn.Identity()
        )
        depthwise_op = functools.partial(conv_op, groups=hidden)
        self.depthwise = ConvDropoutNormReLU(
            depthwise_op,
            hidden,
            hidden,
            kernel_size,
            stride,
            conv_bias,
            *norm,
            dropout_op,
            dropout_op_kwargs,
            *activation,
        )
        self.project = ConvDropoutNormReLU(conv_op, hidden, output_channels, 1, 1, conv_bias, *norm, None, None)
        self.residual = input_channels == output_channels and all(s == 1 for s in stride)

    def forward(self, x):
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.residual else out


class InvertedResidualEncoder(nn.Module):
    """ResidualEncoder's interface and stem (one convolution of the plan's first kernel), its stages
    inverted residuals: the first block of a stage carries the plan's stride, stage 0's widens by 1
    (as MobileNetV2's first block), every later one by `expansion`."""

    def __init__(
        self,
        input_channels: int,
        n_stages: int,
        features_per_stage: list[int],
        conv_op: type[nn.Module],
        kernel_sizes: list,
        strides: list,
        n_blocks_per_stage: list[int],
        expansion: int,
        conv_bias: bool = False,
        norm_op: type[nn.Module] | None = None,
        norm_op_kwargs: dict | None = None,
        dropout_op: type[nn.Module] | None = None,
        dropout_op_kwargs: dict | None = None,
        nonlin: type[nn.Module] | None = None,
        nonlin_kwargs: dict | None = None,
    ):
        super().__init__()
        layers = dict(
            conv_bias=conv_bias,
            norm_op=norm_op,
            norm_op_kwargs=norm_op_kwargs,
            dropout_op=dropout_op,
            dropout_op_kwargs=dropout_op_kwargs,
            nonlin=nonlin,
            nonlin_kwargs=nonlin_kwargs,
        )
        self.stem = StackedConvBlocks(1, conv_op, input_channels, features_per_stage[0], kernel_sizes[0], 1, **layers)
        stages, channels = [], features_per_stage[0]
        for s in range(n_stages):
            widening = 1 if s == 0 else expansion
            blocks = [
                InvertedResidualBlock(
                    conv_op,
                    channels if b == 0 else features_per_stage[s],
                    features_per_stage[s],
                    kernel_sizes[s],
                    strides[s] if b == 0 else 1,
                    widening,
                    **layers,
                )
                for b in range(n_blocks_per_stage[s])
            ]
            stages.append(nn.Sequential(*blocks))
            channels = features_per_stage[s]
        self.stages = nn.Sequential(*stages)
        self.output_channels = list(features_per_stage)
        self.strides = [maybe_convert_scalar_to_list(conv_op, s) for s in strides]
        self.kernel_sizes = kernel_sizes
        self.conv_op = conv_op
        self.return_skips = True
        for name, value in layers.items():  # what a decoder reads from its encoder, as ResidualEncoder keeps it
            setattr(self, name, value)

    def forward(self, x):
        x = self.stem(x)
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


class InvertedResidualDecoder(nn.Module):
    """UNetDecoder's interface (`deep_supervision`, one 1x1 head per stage, outputs finest first) with
    depthwise-separable stages: the stage below is projected (1x1, normalised) to the skip's width and
    upsampled by a depthwise transposed convolution of the plan's stride, added to the skip, and merged by one
    inverted residual of the skip's kernel."""

    def __init__(self, encoder: InvertedResidualEncoder, num_classes: int, expansion: int, deep_supervision: bool):
        super().__init__()
        self.deep_supervision = deep_supervision
        self.num_classes = num_classes
        transpconv_op = get_matching_convtransp(conv_op=encoder.conv_op)
        norm = (encoder.norm_op, encoder.norm_op_kwargs)
        upsamples, stages, seg_layers = [], [], []
        for s in range(1, len(encoder.output_channels)):
            below, skip = encoder.output_channels[-s], encoder.output_channels[-(s + 1)]
            stride = encoder.strides[-s]
            upsamples.append(
                nn.Sequential(
                    ConvDropoutNormReLU(encoder.conv_op, below, skip, 1, 1, encoder.conv_bias, *norm, None, None),
                    transpconv_op(skip, skip, stride, stride, groups=skip, bias=encoder.conv_bias),
                )
            )
            stages.append(
                InvertedResidualBlock(
                    encoder.conv_op,
                    skip,
                    skip,
                    encoder.kernel_sizes[-(s + 1)],
                    1,
                    expansion,
                    encoder.conv_bias,
                    *norm,
                    encoder.dropout_op,
                    encoder.dropout_op_kwargs,
                    encoder.nonlin,
                    encoder.nonlin_kwargs,
                )
            )
            seg_layers.append(encoder.conv_op(skip, num_classes, 1, 1, 0, bias=True))
        self.upsamples = nn.ModuleList(upsamples)
        self.stages = nn.ModuleList(stages)
        self.seg_layers = nn.ModuleList(seg_layers)

    def forward(self, skips):
        """As UNetDecoder: every head (finest first) with deep supervision, else the finest alone."""
        x = skips[-1]
        seg_outputs = []
        for s, (upsample, stage) in enumerate(zip(self.upsamples, self.stages)):
            x = stage(upsample(x) + skips[-(s + 2)])
            if self.deep_supervision or s == len(self.stages) - 1:
                seg_outputs.append(self.seg_layers[s](x))
        seg_outputs = seg_outputs[::-1]
        return seg_outputs if self.deep_supervision else seg_outputs[0]


class InvertedResidualUNet(ReturnsEncoderMaps, nn.Module):
    """The inverted-residual student: built by nnU-Net's get_network_from_plans from the keywords of
    `mobile_arch_kwargs`, its forward that of every student (ReturnsEncoderMaps)."""

    def __init__(
        self,
        input_channels: int,
        n_stages: int,
        features_per_stage: list[int],
        conv_op: type[nn.Module],
        kernel_sizes: list,
        strides: list,
        n_blocks_per_stage: list[int],
        num_classes: int,
        expansion: int = EXPANSION,
        conv_bias: bool = False,
        norm_op: type[nn.Module] | None = None,
        norm_op_kwargs: dict | None = None,
        dropout_op: type[nn.Module] | None = None,
        dropout_op_kwargs: dict | None = None,
        nonlin: type[nn.Module] | None = None,
        nonlin_kwargs: dict | None = None,
        deep_supervision: bool = False,
    ):
        super().__init__()
        self.encoder = InvertedResidualEncoder(
            input_channels,
            n_stages,
            features_per_stage,
            conv_op,
            kernel_sizes,
            strides,
            n_blocks_per_stage,
            expansion,
            conv_bias,
            norm_op,
            norm_op_kwargs,
            dropout_op,
            dropout_op_kwargs,
            nonlin,
            nonlin_kwargs,
        )
        self.decoder = InvertedResidualDecoder(self.encoder, num_classes, expansion, deep_supervision)

    @staticmethod
    def initialize(module):
        """ResidualEncoderUNet's: He initialisation, and every residual block starting as the identity
        (its projection's norm zeroed, as init_last_bn_before_add_to_0 does for BasicBlockD)."""
        InitWeights_He(1e-2)(module)
        if isinstance(module, InvertedResidualBlock) and module.residual:
            norm = getattr(module.project, "norm", None)  # none without a norm_op; no weight without affine
            if norm is not None and norm.weight is not None:
                nn.init.zeros_(norm.weight)
                nn.init.zeros_(norm.bias)


def mobile_arch_kwargs(teacher_arch_kwargs: dict, width_factor: float) -> dict:
    """The inverted-residual student's keywords: the plan's stages at `width_factor` of its widths."""
    return {**plan_stages(teacher_arch_kwargs, width_factor), "expansion": EXPANSION}


INVERTED_RESIDUAL = StudentFamily(
    "inverted-residual", "nnunetv2_hlfd.training.student_mobile.InvertedResidualUNet", mobile_arch_kwargs
)
