"""One definition of a network's total stride and one way from plans to a trainer's network."""

import pytest
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_hlfd.distillation.maps import NetworkGeometry
from nnunetv2_hlfd.models.model_plans import ModelPlans, total_stride
from nnunetv2_hlfd.speed.offline_plans import kits_like_fingerprint, plan
from nnunetv2_hlfd.training.student import ResNetStudentUNet
from nnunetv2_hlfd.training.student_trainer import nnUNetTrainerStudent


@pytest.mark.parametrize(
    "strides, dims, expected",
    [
        ([[1, 1], [2, 2], [2, 2]], None, (4, 4)),
        ([[1, 1, 1], [1, 2, 2], [2, 2, 2]], None, (2, 4, 4)),
        ([1, 2, 2, 2], 3, (8, 8, 8)),
    ],
)
def test_total_stride_is_the_product_per_axis(strides, dims, expected):
    assert total_stride(strides, dims) == expected


@pytest.fixture(scope="module")
def plans():
    plans, dataset_json = plan("default", kits_like_fingerprint(10, (8, 32, 32)))
    manager = PlansManager(plans)
    return ModelPlans(manager, manager.get_configuration("3d_fullres"), dataset_json)


def test_the_trainer_class_decides_the_network_and_the_stride_matches_the_built_one(plans):
    teacher = plans.build_network(nnUNetTrainer)
    student = plans.build_network(nnUNetTrainerStudent)
    assert isinstance(student, ResNetStudentUNet) and not isinstance(teacher, ResNetStudentUNet)
    assert NetworkGeometry.of(teacher).total_stride == plans.total_stride == NetworkGeometry.of(student).total_stride
    patch = torch.zeros(1, plans.num_input_channels, *plans.patch_size)
    with torch.no_grad():
        assert teacher(patch).shape[1] == plans.num_segmentation_heads  # no deep supervision by default
