"""HLFD trained on the schedules of DPRD-3D-MedSeg (docs/METHODS.md, "Weight schedule and the student's
average"): the terms and weights of nnUNetTrainerHLFD, with the distillation weight scheduled per epoch and an
exponential moving average of the student's weights as the model that is validated and predicts.
"""

from nnunetv2_hlfd.distillation.config import hlfd_config
from nnunetv2_hlfd.training.distillation_trainer import nnUNetTrainerDistillation


class nnUNetTrainerHLFD_WarmupEMA(nnUNetTrainerDistillation):
    """DPRD-3D-MedSeg's example: the weight warmed up over 100 epochs (of nnU-Net's 1000), average decay 0.999."""

    distillation = hlfd_config(weight_schedule="warmup", warmup_epochs=100, student_ema_decay=0.999)


class nnUNetTrainerHLFD_Cosine(nnUNetTrainerDistillation):
    """The weight falls from full to near 0 over the training on a cosine."""

    distillation = hlfd_config(weight_schedule="cosine")
