"""The distillation methods HLFD is compared with, as registered terms (see docs/METHODS.md).

Each docstring cites the paper and the authors' code (repository and file) it reproduces,
and names what departs from that code. The trainers keep the authors' weights on terms
reduced as the authors' code reduces them (docs/METHODS.md: why that keeps their ratio to
nnU-Net's cross-entropy). Weights and temperatures live in the trainers' declarations
(trainers/nnUNetTrainerPeerMethods.py); per-term settings are `DistillationConfig.options`.

Stages are matched by index (E(k) of the student with E(k) of the teacher, over the stages
both have) and the student map is resized to the teacher's spatial size; "bottleneck" is
each network's own deepest stage. Label-based terms read the target through `class_masks`
only, so region datasets and ignored voxels are handled in one place.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from dynamic_network_architectures.building_blocks.helper import convert_dim_to_conv_op
from torch import Tensor, nn

from nnunetv2_hlfd.distillation.config import NUMBER, TermOption
from nnunetv2_hlfd.distillation.functional import (
    attention_map,
    attention_transfer,
    kl_divergence,
    masked_means,
    resize,
    spatial_size,
)
from nnunetv2_hlfd.distillation.maps import READS_ENCODER, READS_OUTPUTS, DistillationGeometry
from nnunetv2_hlfd.distillation.targets import class_masks
from nnunetv2_hlfd.distillation.terms import (
    DistillationTerm,
    middle_encoder_stages,
    one_by_one_conv,
    register_term,
    single_voxel_bottleneck,
    too_few_stages,
)

_MAX_POOLS = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def shared_stages(geometry: DistillationGeometry) -> range:
    """E0 .. the last stage both networks have."""
    return range(min(geometry.teacher.num_stages, geometry.student.num_stages))


def _require_target(target: Tensor | None, term: str) -> Tensor:
    if target is None:
        raise ValueError(f"The distillation term {term} reads the labels; pass nnU-Net's training target.")
    return target


# ---- prediction maps -------------------------------------------------------------------
# How a prediction KL is reduced, as each method's authors reduce it (option `reduction`).
KL_REDUCTIONS = ("voxel_mean", "batch_sum", "element_mean")


def kd_options(reduction: str) -> dict[str, TermOption]:
    """KD's settings, with `reduction`'s default as the method's authors reduce the KL."""
    return {
        "temperature": TermOption(None, NUMBER),  # None: the config's T
        "all_scales": TermOption(False, bool),
        "reduction": TermOption(reduction, choices=KL_REDUCTIONS),
    }


@register_term
class KD(DistillationTerm):
    """Hinton, Vinyals & Dean 2015, "Distilling the knowledge in a neural network" (arXiv 1503.02531).

    KL_T between the teacher's and the student's final outputs O(0), T**2-scaled, averaged
    over voxels (Bernoulli KL per region for sigmoid heads). Options: `temperature`
    (default: the config's T), `all_scales` (default False): average the KL over every
    deep-supervision scale O(k) both networks have, each student head resized to the teacher's;
    `reduction` (default the class's): "voxel_mean"; "batch_sum", the voxel mean times the batch
    size (summed over samples, divided by the voxels of one); "element_mean", the voxel mean
    divided by the number of classes (torch's KLDivLoss(reduction="mean") over all elements).
    """

    name = "KD"
    teacher_reads = READS_OUTPUTS
    options = kd_options("voxel_mean")

    def __init__(self, geometry, config):
        super().__init__(geometry, config)
        self.kl_reduction = self.option("reduction")

    def forward(self, student, teacher, target=None):
        temperature = self.option("temperature", derived=self.config.temperature)
        num_scales = min(len(student.outputs), len(teacher.outputs)) if self.option("all_scales") else 1
        kl = (
            sum(
                kl_divergence(
                    resize(student.outputs[k].float(), spatial_size(teacher.outputs[k])),
                    teacher.outputs[k],
                    temperature,
                    self.geometry.regions,
                )
                for k in range(num_scales)
            )
            / num_scales
        )
        if self.kl_reduction == "batch_sum":
            return kl * teacher.outputs[0].shape[0]
        if self.kl_reduction == "element_mean":
            return kl / teacher.outputs[0].shape[1]
        return kl


@register_term
class SKD_pixel(KD):
    """Liu et al. 2019, "Structured knowledge distillation for semantic segmentation" (CVPR), pixel-wise
    term on the final output at T = 1, reduced as the authors' CriterionPixelWise
    (irfanICMLL/structure_knowledge_distillation, utils/criterion.py): summed over the batch and the
    pixels, divided by the pixels of one sample (H*W), i.e. the batch size times the voxel mean.
    Theirs is the cross-entropy -sum p_T log p_S, which is this KL plus the teacher's entropy: the
    same gradient, and 0 here when the student matches. Option `reduction="voxel_mean"` drops the
    batch factor (then weight lambda_pi * 8, their batch, reproduces their setting at any batch size).
    """

    name = "SKD_pixel"
    options = kd_options("batch_sum")


@register_term
class IFVD_pixel(KD):
    """Wang et al. 2020 (IFVD, ECCV), the pixel-wise KD of the authors' default objective
    (YukangWang/IFVD, utils/criterion.py CriterionKD, lambda_kd 10): KL at T = 1 on the final output
    through torch's KLDivLoss() of PyTorch 0.4.1, whose mean runs over every element, classes
    included: the voxel-mean KL divided by the number of classes."""

    name = "IFVD_pixel"
    options = kd_options("element_mean")


@register_term
class EMKD_PMD(KD):
    """Qin et al. 2021, "Efficient medical image segmentation based on knowledge distillation" (IEEE TMI),
    prediction-map distillation: KL at T = 4 on the final output, T**2-scaled, voxel mean, i.e. KD
    under EMKD's name (EagleMIT/EMKD, utils/loss_functions.py prediction_map_distillation: batchmean
    over rows of view(-1, 2), one row per voxel for their two classes)."""

    name = "EMKD_PMD"


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


# ---- structure -------------------------------------------------------------------------
def pairwise_similarity(x: Tensor) -> Tensor:
    """Cosine similarity of every pair of positions' feature vectors: (B, C, *spatial) -> (B, P, P),
    as SKD's `similarity` (utils/utils.py): each vector divided by its L2 norm + 1e-8, the norm
    detached, so the gradient does not see the normalisation."""
    flat = x.float().flatten(2)
    unit = flat / (flat.pow(2).sum(dim=1, keepdim=True).sqrt().detach() + 1e-8)
    return unit.transpose(1, 2) @ unit


@register_term
class SKD_pair(DistillationTerm):
    """Liu et al. 2019 (SKD, CVPR), pair-wise term, as CriterionPairWiseforWholeFeatAfterPool and
    sim_dis_compute (irfanICMLL/structure_knowledge_distillation, utils/criterion.py, utils/utils.py):
    both bottleneck features are max-pooled with kernel and stride int(`pool_scale` * size) per axis
    (default 0.5, ceil_mode, at least 1 where an axis has a single position), then the squared
    difference of their pair-wise cosine similarity matrices (norms detached) is averaged over pairs
    and batch. Channel-agnostic: no adapter. SKD's third, holistic term is SKD_holistic.
    """

    name = "SKD_pair"
    teacher_reads = READS_ENCODER
    options = {"pool_scale": TermOption(0.5, NUMBER)}

    @classmethod
    def skip_reason(cls, geometry, config):
        return single_voxel_bottleneck(geometry)

    def _pool(self, x: Tensor) -> Tensor:
        window = [max(1, int(s * self.option("pool_scale"))) for s in spatial_size(x)]
        return _MAX_POOLS[x.ndim - 2](x, kernel_size=window, stride=window, ceil_mode=True)

    def forward(self, student, teacher, target=None):
        teacher_map = teacher.encoder[-1].float()
        student_map = resize(student.encoder[-1].float(), spatial_size(teacher_map))
        return (
            (pairwise_similarity(self._pool(student_map)) - pairwise_similarity(self._pool(teacher_map))).pow(2).mean()
        )


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


def nearest_masks(masks: Tensor, size) -> Tensor:
    """Masks (B, K, *spatial) resized to `size` by nearest-neighbour sampling, as both IFVD
    (nn.Upsample(mode="nearest")) and EMKD (F.interpolate's default) resize their labels."""
    size = tuple(int(s) for s in size)
    return masks if spatial_size(masks) == size else F.interpolate(masks.float(), size=size, mode="nearest")


def prototype_similarity(features: Tensor, masks: Tensor) -> Tensor:
    """Cosine similarity of every voxel's feature vector to each class prototype (the class's
    mean feature): features (B, C, *spatial), masks (B, K, *spatial) -> (B, K, *spatial)."""
    prototypes = F.normalize(masked_means(features, masks), dim=2)
    unit_features = F.normalize(features.float().flatten(2), dim=1)
    return torch.einsum("bkc,bcp->bkp", prototypes, unit_features).view(masks.shape)


@register_term
class IFVD(DistillationTerm):
    """Wang et al. 2020, "Intra-class feature variation distillation for semantic segmentation" (ECCV),
    the IFV term as CriterionIFV (YukangWang/IFVD, utils/criterion.py).

    On the bottleneck features: the labels are resized to the feature map by nearest-neighbour
    sampling; each class's prototype is its mean feature under its mask, per sample; each voxel's
    cosine similarity to its class's prototype forms the IFV map; loss = MSE between the student's
    and the teacher's IFV maps over all voxels of the batch (a voxel of no class, i.e. ignored,
    adds 0 as in the reference, where it is compared with itself; with overlapping region masks a
    voxel adds one squared difference per region). The similarity compares a network's features
    only with its own prototypes, so the term is channel-agnostic and needs no adapter. The
    authors weight it by lambda_ifv = 200, beside IFVD_pixel (10) and IFVD_holistic.
    """

    name = "IFVD"
    teacher_reads = READS_ENCODER

    @classmethod
    def skip_reason(cls, geometry, config):
        return single_voxel_bottleneck(geometry)

    def forward(self, student, teacher, target=None):
        masks, _ = class_masks(_require_target(target, self.name), self.geometry)
        teacher_features = teacher.encoder[-1].float()
        size = spatial_size(teacher_features)
        masks = nearest_masks(masks, size)
        student_map = prototype_similarity(resize(student.encoder[-1].float(), size), masks)
        teacher_map = prototype_similarity(teacher_features, masks)
        return (masks * (student_map - teacher_map).pow(2)).sum() / (masks.shape[0] * math.prod(size))


def foreground_and_reference_masks(target: Tensor, geometry: DistillationGeometry) -> tuple[Tensor, Tensor]:
    """(each foreground class's mask, the mask it is contrasted with), both (B, K, *spatial): for
    labels, classes 1.. against the background class; for regions, each region against the
    annotated voxels outside it."""
    masks, annotated = class_masks(target, geometry)
    if geometry.regions:
        return masks, annotated - masks
    return masks[:, 1:], masks[:, :1].expand_as(masks[:, 1:])


def region_affinity(features: Tensor, foreground: Tensor, reference: Tensor) -> Tensor:
    """Cosine between the mean feature of each foreground mask and of its reference mask: (B, K);
    the masks are resized to the features by nearest-neighbour sampling. An empty mask's mean is
    the zero vector, so its cosine is 0."""
    size = spatial_size(features)
    return F.cosine_similarity(
        masked_means(features, nearest_masks(foreground, size)),
        masked_means(features, nearest_masks(reference, size)),
        dim=2,
    )


@register_term
class EMKD_RAD(DistillationTerm):
    """Qin et al. 2021 (EMKD), region-affinity distillation, as region_affinity_distillation
    (EagleMIT/EMKD, utils/loss_functions.py, train_kd.py): on the low- and high-level encoder
    features (see `emkd_stages`), the affinity of a tumour (foreground class) and the background
    is the cosine between their region-mean feature vectors, the labels resized nearest; loss =
    squared difference of the student's and teacher's affinities averaged over all samples (and
    foreground classes; a sample without the class adds 0, as theirs), summed over the two stages.
    Channel-agnostic.
    """

    name = "EMKD_RAD"
    teacher_reads = READS_ENCODER
    options = EMKD_STAGE_OPTIONS

    def forward(self, student, teacher, target=None):
        foreground, reference = foreground_and_reference_masks(_require_target(target, self.name), self.geometry)
        return sum(
            (
                region_affinity(student.encoder[k], foreground, reference)
                - region_affinity(teacher.encoder[k], foreground, reference)
            )
            .pow(2)
            .mean()
            for k in emkd_stages(self)
        )
