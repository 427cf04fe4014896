"""The peer methods' terms on prediction maps: KD and the KL terms of SKD, IFVD and EMKD that are
KD under another name and reduction (see docs/METHODS.md).

Each docstring cites the paper and the authors' code (repository and file) it reproduces, and names
what departs from that code; the conventions all the peer terms share (authors' reductions, stage
matching, labels through `class_masks`) are in distillation/__init__.py.
"""

from __future__ import annotations

from nnunetv2_hlfd.distillation.config import NUMBER, TermOption
from nnunetv2_hlfd.distillation.functional import kl_divergence, resize, spatial_size
from nnunetv2_hlfd.distillation.maps import READS_OUTPUTS
from nnunetv2_hlfd.distillation.terms import DistillationTerm, register_term

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
