"""The peer methods' terms on encoder features: attention transfer (AT, EMKD's importance maps) and
the features matched through a trained adapter (FitNets, CWD), with the stage choices they share.

Each docstring cites the paper and the authors' code (repository and file) it reproduces, and names
what departs from that code; the conventions all the peer terms share (authors' reductions, stage
matching, labels through `class_masks`) are in distillation/__init__.py.
"""

from __future__ import annotations

import math

import torch.nn.functional as F

from nnunetv2_hlfd.distillation.config import NUMBER, TermOption
from nnunetv2_hlfd.distillation.functional import attention_map, attention_transfer, kl_divergence, resize, spatial_size
from nnunetv2_hlfd.distillation.maps import READS_ENCODER, READS_OUTPUTS, DistillationGeometry
from nnunetv2_hlfd.distillation.terms import (
    DistillationTerm,
    middle_encoder_stages,
    one_by_one_conv,
    register_term,
    single_voxel_bottleneck,
    too_few_stages,
)


def shared_stages(geometry: DistillationGeometry) -> range:
    """E0 .. the last stage both networks have."""
    return range(min(geometry.teacher.num_stages, geometry.student.num_stages))


# ---- attention (importance) maps -------------------------------------------------------
AT_REDUCTIONS = ("mean_over_positions", "sum_over_positions")
# EMKD's low- and high-level encoder stages (see `emkd_stages`).
EMKD_STAGE_OPTIONS = {"low_stage": TermOption(1, int), "high_stage": TermOption(3, int)}


@register_term
class AT(DistillationTerm):
    """Zagoruyko & Komodakis 2017, "Paying more attention to attention" (ICLR).

    Attention transfer between every pair of encoder stages E(k) both networks have, with the
    config's p (the AT trainer uses the authors' p = 2; HLFD uses 4), as the authors' code
    (szagoruyko/attention-transfer, utils.py at_loss and cifar.py): per stage the squared
    difference of the attention maps averaged over the batch and the positions, summed over the
    stages, weighted by beta = 1e3 (their code multiplies by beta, where the paper writes beta/2).
    Per stage that is 1000 / (its number of positions) times the size-free sum over positions.
    Option `reduction="sum_over_positions"`: each stage's sum over positions (at most 2), still
    summed over the stages, a weight that does not depend on the map sizes. Channel-agnostic.
    """

    name = "AT"
    teacher_reads = READS_ENCODER
    options = {"reduction": TermOption("mean_over_positions", choices=AT_REDUCTIONS)}

    def stages(self) -> list[int]:
        return list(shared_stages(self.geometry))

    def forward(self, student, teacher, target=None):
        p, by_positions = self.config.attention_p, self.option("reduction") == "mean_over_positions"
        total = 0
        for k in self.stages():
            size = spatial_size(teacher.encoder[k])
            summed = attention_transfer(student.encoder[k], attention_map(teacher.encoder[k], p), p, target_size=size)
            total = total + (summed / math.prod(size) if by_positions else summed)
        return total


def emkd_stages(term: DistillationTerm) -> list[int]:
    """EMKD's low-level and high-level features, of the stages both networks have: their ResNet18
    takes the low after conv1 (1/2 resolution) and the high after layer2 (1/8), i.e. E1 and E3 of
    a U-Net whose stages halve the size (options `low_stage`, `high_stage`; clamped to the last)."""
    last = len(shared_stages(term.geometry)) - 1
    chosen = [term.option("low_stage"), term.option("high_stage")]
    return sorted({min(k, last) for k in chosen})


@register_term
class EMKD_IMD(AT):
    """Qin et al. 2021 (EMKD), importance-map distillation (EagleMIT/EMKD, utils/loss_functions.py
    importance_maps_distillation, train_kd.py): attention transfer with p = 4, squared difference
    summed over positions and averaged over the batch, on the low-level and the high-level feature
    (see `emkd_stages`), summed over the two.
    """

    name = "EMKD_IMD"
    options = {"reduction": TermOption("sum_over_positions", choices=AT_REDUCTIONS), **EMKD_STAGE_OPTIONS}

    def stages(self) -> list[int]:
        return emkd_stages(self)


# ---- features through a trained adapter ------------------------------------------------
@register_term
class FitNets(DistillationTerm):
    """Romero et al. 2015, "FitNets: hints for thin deep nets" (ICLR).

    The teacher's middle encoder stage E(k), k = N // 2 over the shared stages (option `stage`),
    is the hint; the student's E(k) is regressed onto it through a trained 1x1 convolution.
    The paper trains the hint alone first (loss 1/2 ||hint - r(guided)||^2), then KD; here the
    hint is one term of a single training run, as an element-wise mean so it does not grow with
    the patch, and the trainer's weight 0.5 is the paper's 1/2.
    """

    name = "FitNets"
    teacher_reads = READS_ENCODER
    options = {"stage": TermOption(None, int)}  # None: N // 2 of the shared stages

    def __init__(self, geometry, config):
        super().__init__(geometry, config)
        self.stage = self.option("stage", derived=len(shared_stages(geometry)) // 2)
        if self.stage not in shared_stages(geometry):
            raise ValueError(
                f"FitNets stage {self.stage} is not a stage both networks have ({list(shared_stages(geometry))})."
            )
        self.regressor = one_by_one_conv(
            geometry.student.spatial_dims,
            geometry.student.encoder_channels[self.stage],
            geometry.teacher.encoder_channels[self.stage],
        )

    @classmethod
    def skip_reason(cls, geometry, config):
        n = len(shared_stages(geometry))
        return too_few_stages("shallower network", n, middle_encoder_stages)

    def forward(self, student, teacher, target=None):
        hint = teacher.encoder[self.stage].float()
        guided = self.regressor(resize(student.encoder[self.stage].float(), spatial_size(hint)))
        return F.mse_loss(guided, hint)


@register_term
class CWD(DistillationTerm):
    """Shu et al. 2021, "Channel-wise knowledge distillation for dense prediction" (ICCV).

    Each channel is turned into a distribution over positions by a softmax at temperature T;
    loss = T**2 * KL(teacher || student) summed over positions, averaged over channels and batch.
    Default on the final logits O(0), which works alike for softmax and sigmoid heads (the
    distribution is over positions, not classes). Option `features` (default False): on the
    bottleneck instead, the student's mapped to the teacher's channels by a trained 1x1 conv.
    Option `temperature`. The loss is mmrazor's ChannelWiseDivergence (open-mmlab/mmrazor,
    mmrazor/models/losses/cwd.py: T**2 * KL summed over positions, divided by channels and batch),
    and the method's default is its segmentation configuration on logits alone
    (configs/distill/mmseg/cwd/cwd_logits_pspnet_r101_d8_pspnet_r18_d8_512x1024_cityscapes_80k.py):
    T = 1, weight 5. CIRKD's run (winycg/CIRKD, scripts/train_kd/train_cwd.sh, losses/cwd.py) uses
    T = 4, weight 3 on logits and 50 on features, beside KD and an adversarial term.
    """

    name = "CWD"
    options = {"features": TermOption(False, bool), "temperature": TermOption(None, NUMBER)}  # None: config's T

    def __init__(self, geometry, config):
        super().__init__(geometry, config)
        self.on_features = self.option("features")
        self.teacher_reads = READS_ENCODER if self.on_features else READS_OUTPUTS
        if self.on_features:
            self.adapter = one_by_one_conv(
                geometry.student.spatial_dims,
                geometry.student.encoder_channels[-1],
                geometry.teacher.encoder_channels[-1],
            )

    @classmethod
    def skip_reason(cls, geometry, config):
        # On logits the distribution runs over full-resolution positions; on features over the bottleneck's.
        return single_voxel_bottleneck(geometry) if config.option(cls.name, "features", False) else None

    def forward(self, student, teacher, target=None):
        if self.on_features:
            teacher_map = teacher.encoder[-1].float()
            student_map = self.adapter(resize(student.encoder[-1].float(), spatial_size(teacher_map)))
        else:
            teacher_map = teacher.outputs[0].float()
            student_map = resize(student.outputs[0].float(), spatial_size(teacher_map))
        # Positions moved to dim 1 make the softmax KL over classes the per-channel spatial KL.
        return kl_divergence(
            student_map.flatten(2).transpose(1, 2),
            teacher_map.flatten(2).transpose(1, 2),
            self.option("temperature", derived=self.config.temperature),
        )
