"""The peer methods' structure terms: relations between positions or regions of a network's own
features, compared between student and teacher (SKD's pair-wise similarity, IFVD's intra-class
feature variation, EMKD's region affinity), so none needs an adapter.

Each docstring cites the paper and the authors' code (repository and file) it reproduces, and names
what departs from that code; the conventions all the peer terms share (authors' reductions, stage
matching, labels through `class_masks`) are in distillation/__init__.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from nnunetv2_hlfd.distillation.config import NUMBER, TermOption
from nnunetv2_hlfd.distillation.functional import masked_means, resize, spatial_size
from nnunetv2_hlfd.distillation.maps import READS_ENCODER, DistillationGeometry
from nnunetv2_hlfd.distillation.peer_features import EMKD_STAGE_OPTIONS, emkd_stages
from nnunetv2_hlfd.distillation.targets import class_masks
from nnunetv2_hlfd.distillation.terms import DistillationTerm, register_term, single_voxel_bottleneck

_MAX_POOLS = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def _require_target(target: Tensor | None, term: str) -> Tensor:
    if target is None:
        raise ValueError(f"The distillation term {term} reads the labels; pass nnU-Net's training target.")
    return target


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
