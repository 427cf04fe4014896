"""The ResNet18-style student without distillation ('w/o KD'), found by nnU-Net by name."""
from nnunetv2_hlfd.training.student_trainer import nnUNetTrainerStudent

__all__ = ["nnUNetTrainerStudent"]
