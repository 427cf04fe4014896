"""The inverted-residual student (nnunetv2_hlfd/training/student_mobile.py), at most 10% of the plan's network:
trained alone ('w/o KD'), by HLFD and by every peer method, each the method's own trainer with this student.

Sizes: the default takes half the plan's widths, Small a quarter, Large up to the plan's own, each narrowed
until its parameters and multiply-adds per patch are at most 10% of the plan's network.
"""

from nnunetv2_hlfd.trainers.nnUNetTrainerHLFD import nnUNetTrainerHLFD
from nnunetv2_hlfd.trainers.nnUNetTrainerPeerMethods import (
    nnUNetTrainerAT,
    nnUNetTrainerCWD,
    nnUNetTrainerEMKD,
    nnUNetTrainerFitNets,
    nnUNetTrainerIFVD,
    nnUNetTrainerKD,
    nnUNetTrainerSKD,
    nnUNetTrainerSKD_Holistic,
)

from nnunetv2_hlfd.training.student_mobile import (
    INVERTED_RESIDUAL,
    MOBILE_SIZE,
    MOBILE_SIZE_LARGE,
    MOBILE_SIZE_SMALL,
)
from nnunetv2_hlfd.training.student_trainer import nnUNetTrainerStudent


class MobileStudent:
    """Placed before a trainer class among its bases: that trainer with the inverted-residual student."""

    student_family = INVERTED_RESIDUAL
    student_size = MOBILE_SIZE


class nnUNetTrainerStudentMobile(MobileStudent, nnUNetTrainerStudent):
    pass


class nnUNetTrainerStudentMobileSmall(nnUNetTrainerStudentMobile):
    student_size = MOBILE_SIZE_SMALL


class nnUNetTrainerStudentMobileLarge(nnUNetTrainerStudentMobile):
    student_size = MOBILE_SIZE_LARGE


class nnUNetTrainerHLFDMobile(MobileStudent, nnUNetTrainerHLFD):
    pass


class nnUNetTrainerHLFDMobileSmall(nnUNetTrainerHLFDMobile):
    student_size = MOBILE_SIZE_SMALL


class nnUNetTrainerHLFDMobileLarge(nnUNetTrainerHLFDMobile):
    student_size = MOBILE_SIZE_LARGE


class nnUNetTrainerKDMobile(MobileStudent, nnUNetTrainerKD):
    pass


class nnUNetTrainerATMobile(MobileStudent, nnUNetTrainerAT):
    pass


class nnUNetTrainerFitNetsMobile(MobileStudent, nnUNetTrainerFitNets):
    pass


class nnUNetTrainerSKDMobile(MobileStudent, nnUNetTrainerSKD):
    pass


class nnUNetTrainerSKD_HolisticMobile(MobileStudent, nnUNetTrainerSKD_Holistic):
    pass


class nnUNetTrainerIFVDMobile(MobileStudent, nnUNetTrainerIFVD):
    pass


class nnUNetTrainerCWDMobile(MobileStudent, nnUNetTrainerCWD):
    pass


class nnUNetTrainerEMKDMobile(MobileStudent, nnUNetTrainerEMKD):
    pass
