"""The ResNet18-style student without distillation ('w/o KD'), found by nnU-Net by name, and students of
other sizes (nnunetv2_hlfd/training/student.py: StudentSize), each rebuilt by nnUNetv2_predict -tr NAME."""

from nnunetv2_hlfd.training.student import StudentSize
from nnunetv2_hlfd.training.student_trainer import nnUNetTrainerStudent

__all__ = ["nnUNetTrainerStudent", "nnUNetTrainerStudentSmall", "nnUNetTrainerStudentLarge"]


class nnUNetTrainerStudentSmall(nnUNetTrainerStudent):
    """Quarter of the plan's widths (about 9% of the default plans' network), at most 35%."""

    student_size = StudentSize(width_factor=0.25)


class nnUNetTrainerStudentLarge(nnUNetTrainerStudent):
    """Up to the plan's own widths, at most 70% of its network's parameters and multiply-adds."""

    student_size = StudentSize(width_factor=1.0, budget=0.7)
