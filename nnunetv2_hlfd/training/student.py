"""The ResNet18-style student of HLFD_SPEC.md, derived from the teacher's nnU-Net plans.

It is a ResidualEncoderUNet with the plan's patch, strides and stages, BasicBlock stages of
1, 2, 2, ... blocks, half the plan's widths and one convolution per decoder stage. The
derivation is a pure function of the plans, so nnUNetv2_predict rebuilds the same network.
"""
from __future__ import annotations

from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

STUDENT_ARCH_CLASS = "nnunetv2_hlfd.training.student.ResNetStudentUNet"
STUDENT_WIDTH_FACTOR = 0.5
# Keys whose meaning is the same in PlainConvUNet and ResidualEncoderUNet plans.
_INHERITED_KEYS = ("n_stages", "conv_op", "kernel_sizes", "strides", "conv_bias", "norm_op", "norm_op_kwargs",
                   "dropout_op", "dropout_op_kwargs", "nonlin", "nonlin_kwargs")


class ResNetStudentUNet(ResidualEncoderUNet):
    """A ResidualEncoderUNet that can also return its encoder stages.

    Taking the stages from forward (rather than a hook or a second encoder call) keeps
    the student one module for DDP and torch.compile. Its weights are exactly those of
    ResidualEncoderUNet.
    """

    def forward(self, x, return_encoder_maps: bool = False):
        skips = self.encoder(x)
        outputs = self.decoder(skips)
        return (outputs, skips) if return_encoder_maps else outputs


def student_arch_kwargs(teacher_arch_kwargs: dict) -> dict:
    n_stages = teacher_arch_kwargs["n_stages"]
    kwargs = {key: teacher_arch_kwargs[key] for key in _INHERITED_KEYS}
    kwargs["features_per_stage"] = [max(1, int(f * STUDENT_WIDTH_FACTOR))
                                    for f in teacher_arch_kwargs["features_per_stage"]]
    kwargs["n_blocks_per_stage"] = [1] + [2] * (n_stages - 1)  # ResNet18's 2-2-2-2 after a 1-block stem stage
    kwargs["n_conv_per_stage_decoder"] = [1] * (n_stages - 1)
    return kwargs


def build_student(configuration_manager: ConfigurationManager, num_input_channels: int, num_output_channels: int,
                  enable_deep_supervision: bool = True) -> ResNetStudentUNet:
    return get_network_from_plans(STUDENT_ARCH_CLASS,
                                  student_arch_kwargs(configuration_manager.network_arch_init_kwargs),
                                  configuration_manager.network_arch_init_kwargs_req_import,
                                  num_input_channels, num_output_channels, allow_init=True,
                                  deep_supervision=enable_deep_supervision)
