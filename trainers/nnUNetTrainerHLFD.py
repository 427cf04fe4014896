"""HLFD (arXiv 2311.16700): hierarchical layer-selective feedback distillation.

L = L_seg + 0.9 * (0.5 UFD + 0.5 IFD) + 0.1 * (0.5 UPD + 0.5 IPD), attention p = 4, T = 4.
"""
from nnunetv2_hlfd.distillation.config import hlfd_config
from nnunetv2_hlfd.training.distillation_trainer import nnUNetTrainerDistillation


class nnUNetTrainerHLFD(nnUNetTrainerDistillation):
    distillation = hlfd_config()
