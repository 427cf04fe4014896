"""The peer methods' adversarial terms: SKD's holistic term and IFVD's, a critic trained through
gradient reversal inside the engine's single loss.

Each docstring cites the paper and the authors' code (repository and file) it reproduces, and names
what departs from that code; the conventions all the peer terms share (authors' reductions, stage
matching, labels through `class_masks`) are in distillation/__init__.py.
"""

from __future__ import annotations

import math

import torch
from dynamic_network_architectures.building_blocks.helper import convert_dim_to_conv_op
from torch import Tensor, nn

from nnunetv2_hlfd.distillation.config import NUMBER, TermOption
from nnunetv2_hlfd.distillation.functional import resize, spatial_size
from nnunetv2_hlfd.distillation.maps import READS_OUTPUTS
from nnunetv2_hlfd.distillation.terms import DistillationTerm, register_term


class _ReverseGradient(torch.autograd.Function):
    """Identity forward, gradient times -scale backward (Ganin & Lempitsky 2015)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def reverse_gradient(x: Tensor, scale: float = 1.0) -> Tensor:
    return _ReverseGradient.apply(x, scale)


def segmentation_critic(spatial_dims: int, num_classes: int, width: int = 16) -> nn.Module:
    """A small fully convolutional critic: three strided convolutions, then one score per position.
    No normalisation layers: batch statistics would couple the scores of teacher and student maps."""
    conv = convert_dim_to_conv_op(spatial_dims)
    layers, channels = [], num_classes
    for out_channels in (width, 2 * width, 4 * width):
        layers += [conv(channels, out_channels, kernel_size=3, stride=2, padding=1), nn.LeakyReLU(0.2)]
        channels = out_channels
    # No bias on the score: it cancels in every score difference, so it would never be trained.
    return nn.Sequential(*layers, conv(channels, 1, kernel_size=1, bias=False))


@register_term
class SKD_holistic(DistillationTerm):
    """Liu et al. 2019 (SKD, CVPR), holistic term: an adversarial critic D scores the teacher's
    segmentation maps high and the student's low; the student learns to be scored like the teacher.
    Off in nnUNetTrainerSKD; nnUNetTrainerSKD_Holistic adds it at the paper's lambda_d = 0.1.

    Inside the engine's single loss the min-max is one backward pass: the term is the critic's
    Wasserstein loss mean D(S) - mean D(T) on the softmax (sigmoid for regions) of the final
    outputs O(0). The critic is a registered adapter, optimised with the student, so it descends
    on this value; the student's probabilities pass a gradient-reversal layer, so the student
    ascends on it, i.e. minimises -D(S), exactly the WGAN generator loss. The logged value is
    negative while the critic separates the two and rises to 0 as the student fools it.

    Why a WGAN score difference with weight clipping and not a hinge: the difference is linear in
    D, so reversing its gradient gives the student WGAN's own generator loss; with a hinge, the
    reversed critic loss relu(1 + D(S)) stops the student's gradient as soon as the critic is
    confident (D(S) < -1), the saturation GANs avoid. Weight clipping (Arjovsky et al. 2017) keeps
    D Lipschitz with no second backward. WGAN's fixed box of 0.01 was set for wide critics; on this
    small one it leaves scores of ~1e-6 and the student no gradient. So each convolution's box is
    +-clip / sqrt(fan-in) (option `clip`, default 2): random-sign weights then pass their input with
    a gain of about 1 whatever the width or spatial rank (scores of order 0.1 once the weights fill
    the box). The clip is
    applied at the start of each forward, i.e. after the previous optimiser step.

    Option `generator_scale` (default 1): the student's reversed gradient is this times the critic's,
    for methods whose authors weight the critic's loss (lambda_d) and the student's adversarial
    loss (lambda_adv) apart: the term's weight is lambda_d, generator_scale = lambda_adv / lambda_d.
    SKD weights both by lambda_d = 0.1 (irfanICMLL/structure_knowledge_distillation,
    networks/kd_model.py), so 1.

    Deviations: the paper conditions D on the image; the authors' code feeds D the segmentation
    output alone, as here (the terms do not receive the image). Their D is a self-attention GAN
    critic (64 channels) kept Lipschitz by a gradient penalty (WGAN-GP, lambda_gp = 10) and trained
    by its own SGD (lr 4e-4); here three strided convolutions (option `width`, default 16), weight
    clipping, and nnU-Net's SGD shared with the student (with its gradient-norm clipping).
    """

    name = "SKD_holistic"
    teacher_reads = READS_OUTPUTS
    options = {
        "width": TermOption(16, int),
        "clip": TermOption(2.0, NUMBER),
        "generator_scale": TermOption(1.0, NUMBER),
    }

    def __init__(self, geometry, config):
        super().__init__(geometry, config)
        self.critic = segmentation_critic(geometry.student.spatial_dims, geometry.num_classes, self.option("width"))

    def probabilities(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits) if self.geometry.regions else torch.softmax(logits, dim=1)

    @torch.no_grad()
    def clip_critic(self) -> None:
        """Each convolution's weights and bias into +-clip / sqrt(fan-in)."""
        clip = float(self.option("clip"))
        for conv in self.critic.modules():
            if isinstance(conv, nn.modules.conv._ConvNd):
                bound = clip / math.sqrt(conv.weight[0].numel())
                for parameter in (conv.weight, conv.bias):
                    if parameter is not None:
                        parameter.clamp_(-bound, bound)

    def score(self, probabilities: Tensor) -> Tensor:
        """The critic's mean score of each sample: (B,)."""
        return self.critic(probabilities).flatten(1).mean(1)

    def forward(self, student, teacher, target=None):
        self.clip_critic()  # before the graph is built: clamping in place afterwards would invalidate it
        teacher_logits = teacher.outputs[0].float()
        student_logits = resize(student.outputs[0].float(), spatial_size(teacher_logits))
        # One critic pass over both (no batch statistics couple them); only the student's half is reversed.
        generator_scale = float(self.option("generator_scale"))
        scores = self.score(
            torch.cat(
                [
                    reverse_gradient(self.probabilities(student_logits), generator_scale),
                    self.probabilities(teacher_logits),
                ]
            )
        )
        student_score, teacher_score = scores.split(len(student_logits))
        return student_score.mean() - teacher_score.mean()


@register_term
class IFVD_holistic(SKD_holistic):
    """Wang et al. 2020 (IFVD, ECCV), the adversarial term of the authors' default objective
    (YukangWang/IFVD, options.py, networks/kd_model.py): SKD's holistic term, whose code IFVD
    builds on, with the critic's loss weighted lambda_d = 0.1 and the student's lambda_adv = 0.001.
    nnUNetTrainerIFVD weights the term 0.1 with option generator_scale 0.01 (= 0.001 / 0.1).
    Their critic has its own Adam (lr 4e-4, betas 0.9, 0.99); here it shares nnU-Net's SGD."""

    name = "IFVD_holistic"
