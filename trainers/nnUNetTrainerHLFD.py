"""HLFD (arXiv 2311.16700): hierarchical layer-selective feedback distillation.

L = L_seg + 0.9 * (0.5 UFD + 0.5 IFD) + 0.1 * (0.5 UPD + 0.5 IPD), attention p = 4, T = 4.
HLFDSmall / HLFDLarge distil into the students of nnUNetTrainerStudentSmall / -Large.
"""

from nnunetv2_hlfd.distillation.config import hlfd_config
from nnunetv2_hlfd.training.distillation_trainer import nnUNetTrainerDistillation
from nnunetv2_hlfd.training.student import StudentSize


class nnUNetTrainerHLFD(nnUNetTrainerDistillation):
    distillation = hlfd_config()


class nnUNetTrainerHLFDSmall(nnUNetTrainerHLFD):
    """Quarter of the plan's widths (about 9% of the default plans' network), at most 35%."""

    student_size = StudentSize(width_factor=0.25)


class nnUNetTrainerHLFDLarge(nnUNetTrainerHLFD):
    """Up to the plan's own widths, at most 70% of its network's parameters and multiply-adds."""

    student_size = StudentSize(width_factor=1.0, budget=0.7)
