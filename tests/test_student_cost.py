"""The student's size against the teacher on the plans nnU-Net itself makes: at most 35% of the
parameters and of the multiply-adds per patch, for the default and the ResEnc-L planners."""
import pytest
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_hlfd.benchmarking.plans import kits_like_fingerprint, plan
from nnunetv2_hlfd.cost import model_cost
from nnunetv2_hlfd.training.student import build_student

MAX_RATIO = 0.35
# KiTS-like CT gives nnU-Net's 512x512 2d patch; an isotropic 256^3 fingerprint its 128^3 3d_fullres patch.
FINGERPRINTS = {"2d": dict(shape=(128, 512, 512), spacing=0.78), "3d_fullres": dict(shape=(256, 256, 256), spacing=1.0)}
DEFAULT_PATCHES = {"2d": [512, 512], "3d_fullres": [128, 128, 128]}
NUM_CLASSES = 3


def student_and_teacher_costs(planner: str, configuration: str):
    plans, _ = plan(planner, kits_like_fingerprint(**FINGERPRINTS[configuration]))
    cm = PlansManager(plans).get_configuration(configuration)
    shape = (1, 1, *cm.patch_size)
    teacher = model_cost(lambda: get_network_from_plans(
        cm.network_arch_class_name, cm.network_arch_init_kwargs, cm.network_arch_init_kwargs_req_import, 1,
        NUM_CLASSES, deep_supervision=True), shape)
    student = model_cost(lambda: build_student(cm, 1, NUM_CLASSES), shape)
    return cm, student, teacher


@pytest.mark.parametrize("configuration", ["2d", "3d_fullres"])
def test_default_plans_student_is_at_most_35_percent_of_the_teacher(configuration):
    cm, student, teacher = student_and_teacher_costs("default", configuration)
    assert list(cm.patch_size) == DEFAULT_PATCHES[configuration]
    assert student.parameters <= MAX_RATIO * teacher.parameters
    assert student.macs_per_patch <= MAX_RATIO * teacher.macs_per_patch


@pytest.mark.parametrize("configuration", ["2d", "3d_fullres"])
def test_resenc_l_plans_give_a_student_with_the_same_stages_and_at_most_35_percent(configuration):
    cm, student, teacher = student_and_teacher_costs("ResEncL", configuration)
    assert cm.network_arch_class_name.endswith("ResidualEncoderUNet")
    assert student.parameters <= MAX_RATIO * teacher.parameters
    assert student.macs_per_patch <= MAX_RATIO * teacher.macs_per_patch
