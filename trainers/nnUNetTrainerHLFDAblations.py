"""HLFD's ablations (arXiv 2311.16700, Tables 2-3), each the full method with some terms left out,
HLFD with IFD's area shrinking, and HLFD trained with the reference code's segmentation loss.

Every kept term keeps its HLFD weight (0.5 of its level's beta = 0.9 or lambda = 0.1).
"""

from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

from nnunetv2_hlfd.distillation.config import FEATURE_TERMS, PIXEL_TERMS, hlfd_config
from nnunetv2_hlfd.training.distillation_trainer import nnUNetTrainerDistillation
from nnunetv2_hlfd.training.reference_loss import ReferenceFocalDiceLoss
from nnunetv2_hlfd.utilities.environment import UserFacingError


class nnUNetTrainerHLFD_FLFD(nnUNetTrainerDistillation):
    """Feature level only: UFD + IFD."""

    distillation = hlfd_config(terms=FEATURE_TERMS)


class nnUNetTrainerHLFD_PLFD(nnUNetTrainerDistillation):
    """Pixel level only: UPD + IPD."""

    distillation = hlfd_config(terms=PIXEL_TERMS)


class nnUNetTrainerHLFD_UFD(nnUNetTrainerDistillation):
    distillation = hlfd_config(terms=("UFD",))


class nnUNetTrainerHLFD_IFD(nnUNetTrainerDistillation):
    distillation = hlfd_config(terms=("IFD",))


class nnUNetTrainerHLFD_UPD(nnUNetTrainerDistillation):
    distillation = hlfd_config(terms=("UPD",))


class nnUNetTrainerHLFD_IPD(nnUNetTrainerDistillation):
    distillation = hlfd_config(terms=("IPD",))


class nnUNetTrainerHLFD_HIFD(nnUNetTrainerDistillation):
    """Individual terms at both levels (IFD + IPD), no unified terms."""

    distillation = hlfd_config(terms=("IFD", "IPD"))


class nnUNetTrainerHLFD_IFDArea(nnUNetTrainerDistillation):
    """Full HLFD, IFD taking each student stage's attention at its own resolution, area-averaged to the
    bottleneck's grid (every student voxel gets IFD gradient; the paper shrinks the features bilinearly)."""

    distillation = hlfd_config(options={"IFD": {"student_shrink": "area"}})


class nnUNetTrainerHLFD_PaperLoss(nnUNetTrainerDistillation):
    """HLFD with the reference code's segmentation loss in place of nnU-Net's Dice + CE: 0.5 softmax
    focal (gamma 2) + 0.5 soft Dice over the foreground classes, pooled over the batch, as `calc_loss`
    of vangorade/RethinkingKD_ISBI24 (training/reference_loss.py: the reference, and how labels of
    more than two classes and regions extend it), deep-supervised with nnU-Net's scale weights.
    """

    distillation = hlfd_config()

    def _build_loss(self):
        if self.label_manager.ignore_label is not None:
            raise UserFacingError(
                f"{type(self).__name__} cannot train on a dataset with an ignore label "
                f"({self.label_manager.ignore_label}): the reference code's focal + Dice loss has no ignore label, "
                f"so unannotated voxels would be learnt as a class. Train nnUNetTrainerHLFD (nnU-Net's Dice + CE "
                f"masks them) or remove 'ignore' from the labels in dataset.json."
            )
        focal_dice = ReferenceFocalDiceLoss(regions=self.label_manager.has_regions)
        if not self.enable_deep_supervision:
            return focal_dice
        # nnU-Net's own scale weights (including its DDP special case), taken from the loss it would build.
        return DeepSupervisionWrapper(focal_dice, super()._build_loss().weight_factors)
