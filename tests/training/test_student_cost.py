"""The student's size against the plan's own network on the plans nnU-Net itself makes (default and
ResEnc-L planners; 2d, 3d_fullres, 3d_lowres; large, small-patch and few-stage plans): at most 35% of
the parameters and of the multiply-adds per patch, as wide as that allows up to half the plan's widths,
and the students of other sizes that nnUNetv2_predict rebuilds from their trainer's name."""

import pytest
from planned_configurations import NUM_CLASSES, PLANNED, configuration, plan_network_cost

from nnunetv2_hlfd.models.cost import model_cost
from nnunetv2_hlfd.training.student import WIDTH_STEPS, StudentSize, build_student, student_width_factor
from nnunetv2_hlfd.utilities.trainer_search import find_trainer_class

MAX_RATIO = 0.35
DEFAULT_PATCHES = {("kits", "2d"): (512, 512), ("isotropic256", "3d_fullres"): (128, 128, 128)}


def costs(cm, size: StudentSize = StudentSize()):
    shape = (1, 1, *cm.patch_size)
    return model_cost(lambda: build_student(cm, 1, NUM_CLASSES, size=size), shape), plan_network_cost(cm)


@pytest.mark.parametrize("planner, fingerprint, name", PLANNED, ids=["-".join(p) for p in PLANNED])
def test_student_is_at_most_35_percent_of_the_plans_network(planner, fingerprint, name):
    cm = configuration(planner, fingerprint, name)
    student, plan_network = costs(cm)
    assert student.parameters <= MAX_RATIO * plan_network.parameters
    assert student.macs_per_patch <= MAX_RATIO * plan_network.macs_per_patch


@pytest.mark.parametrize("planner, fingerprint, name", PLANNED[:3] + PLANNED[4:6], ids=lambda p: p)
def test_student_keeps_resnet18s_blocks_and_one_convolution_per_decoder_stage(planner, fingerprint, name):
    cm = configuration(planner, fingerprint, name)
    student = build_student(cm, 1, NUM_CLASSES)
    n_stages = cm.network_arch_init_kwargs["n_stages"]
    assert [len(stage.blocks) for stage in student.encoder.stages] == [1] + [2] * (n_stages - 1)
    assert all(len(stage.convs) == 1 for stage in student.decoder.stages)


@pytest.mark.parametrize("fingerprint, name", list(DEFAULT_PATCHES))
def test_default_plans_keep_the_half_width_student(fingerprint, name):
    cm = configuration("default", fingerprint, name)
    assert tuple(cm.patch_size) == DEFAULT_PATCHES[(fingerprint, name)]
    assert student_width_factor(cm, 1, NUM_CLASSES) == 0.5
    assert build_student(cm, 1, NUM_CLASSES).encoder.output_channels == [
        f // 2 for f in cm.network_arch_init_kwargs["features_per_stage"]
    ]


@pytest.mark.parametrize("name", ["2d", "3d_fullres"])
def test_small_plans_narrow_the_student_no_further_than_the_budget_needs(name):
    """Half widths are 43% of the parameters here; one step wider than the chosen width is over 35%."""
    cm = configuration("default", "small", name)
    width_factor = student_width_factor(cm, 1, NUM_CLASSES)
    assert width_factor < 0.5
    wider, plan_network = costs(cm, StudentSize(width_factor=width_factor + 1 / WIDTH_STEPS, budget=10.0))
    assert (
        wider.parameters > MAX_RATIO * plan_network.parameters
        or wider.macs_per_patch > MAX_RATIO * plan_network.macs_per_patch
    )


@pytest.mark.parametrize("size_name", ["Small", "Large"])
def test_sized_students_are_rebuilt_from_the_trainer_name_as_nnunetv2_predict_does(size_name):
    cm = configuration("default", "small", "2d")
    trainer = find_trainer_class(f"nnUNetTrainerStudent{size_name}")
    predicted = trainer.build_network_architecture(None, cm, 1, NUM_CLASSES, enable_deep_supervision=False)
    trained = build_student(cm, 1, NUM_CLASSES, size=trainer.student_size)
    assert {k: v.shape for k, v in predicted.state_dict().items()} == {
        k: v.shape for k, v in trained.state_dict().items()
    }
    student, plan_network = costs(cm, trainer.student_size)
    assert student.parameters <= trainer.student_size.budget * plan_network.parameters
    assert student.macs_per_patch <= trainer.student_size.budget * plan_network.macs_per_patch
    assert find_trainer_class(f"nnUNetTrainerHLFD{size_name}").student_size == trainer.student_size


def test_small_default_and_large_students_grow_in_that_order():
    cm = configuration("default", "small", "2d")
    parameters = [
        costs(cm, find_trainer_class(f"nnUNetTrainerStudent{size}").student_size)[0].parameters
        for size in ("Small", "", "Large")
    ]
    assert parameters == sorted(parameters) and len(set(parameters)) == 3


def test_a_budget_no_student_fits_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"No ResNet18-style student fits 0% .* Raise StudentSize.budget"):
        build_student(configuration("default", "tiny", "2d"), 1, NUM_CLASSES, size=StudentSize(budget=1e-4))


@pytest.mark.parametrize(
    "keywords, problem", [({"width_factor": 0}, "width_factor is 0"), ({"budget": -1}, "budget is -1")]
)
def test_student_size_refuses_impossible_values(keywords, problem):
    with pytest.raises(ValueError, match=problem):
        StudentSize(**keywords)
