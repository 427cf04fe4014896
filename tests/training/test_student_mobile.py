"""The inverted-residual student on the plans nnU-Net makes: at most 10% of the plan's network in parameters and
multiply-adds per patch at every size, its deep-supervision heads at the plan's scales and its encoder stages at
the teacher's, depthwise-separable, and rebuilt from its trainer's name as nnUNetv2_predict rebuilds it."""

import pytest
import torch
from planned_configurations import (
    MOBILE_PLANNED,
    NUM_CLASSES,
    PLANNED,
    configuration,
    plan_network,
    plan_network_cost,
)

from nnunetv2_hlfd.distillation.maps import NetworkGeometry, teacher_maps
from nnunetv2_hlfd.models.cost import model_cost
from nnunetv2_hlfd.training.student import StudentSize, build_student, student_width_factor
from nnunetv2_hlfd.training.student_mobile import (
    INVERTED_RESIDUAL,
    MOBILE_BUDGET,
    MOBILE_SIZE,
    MOBILE_SIZE_LARGE,
    MOBILE_SIZE_SMALL,
    InvertedResidualBlock,
    InvertedResidualUNet,
)
from nnunetv2_hlfd.utilities.trainer_search import find_trainer_class

SIZES = {"Small": MOBILE_SIZE_SMALL, "": MOBILE_SIZE, "Large": MOBILE_SIZE_LARGE}
# Plans whose shapes are checked: 2d with 8 stages, isotropic and anisotropic 3d, ResEnc-L, 3 stages.
SHAPE_PLANS = [PLANNED[0], PLANNED[2], PLANNED[3], PLANNED[7], PLANNED[9]]


def mobile_student(cm, size: StudentSize = MOBILE_SIZE, deep_supervision: bool = True):
    return build_student(cm, 1, NUM_CLASSES, deep_supervision, size, INVERTED_RESIDUAL)


def mobile_cost(cm, size: StudentSize):
    return model_cost(lambda: mobile_student(cm, size), (1, 1, *cm.patch_size))


def plan_id(planned) -> str:
    return "-".join(planned)


def on_meta(planner, fingerprint, name, forward):
    """The plan's configuration, its student and network, and `forward(student, teacher, patch)` run on the meta
    device: the shapes of a full-size patch without its memory."""
    cm = configuration(planner, fingerprint, name)
    with torch.device("meta"):
        student, teacher = mobile_student(cm), plan_network(cm)
        return cm, student, teacher, forward(student, teacher, torch.empty(1, 1, *cm.patch_size))


@pytest.mark.parametrize("size_name", SIZES)
@pytest.mark.parametrize("planner, fingerprint, name", MOBILE_PLANNED, ids=[plan_id(p) for p in MOBILE_PLANNED])
def test_every_size_is_at_most_10_percent_of_the_plans_network(planner, fingerprint, name, size_name):
    cm = configuration(planner, fingerprint, name)
    student, plan_cost = mobile_cost(cm, SIZES[size_name]), plan_network_cost(cm)
    assert student.parameters <= 0.1 * plan_cost.parameters
    assert student.macs_per_patch <= 0.1 * plan_cost.macs_per_patch


@pytest.mark.parametrize("name", ["3d_fullres", "3d_lowres"])
def test_sizes_grow_small_default_large_on_the_default_3d_plans(name):
    """Half widths fit 10% of the default 3d plans, so each size is its own width there."""
    cm = configuration("default", "kits", name)
    widths = [student_width_factor(cm, 1, NUM_CLASSES, size, INVERTED_RESIDUAL) for size in SIZES.values()]
    assert widths[:2] == [0.25, 0.5] and widths[2] > 0.5
    parameters = [mobile_cost(cm, size).parameters for size in SIZES.values()]
    assert parameters == sorted(parameters) and len(set(parameters)) == 3


@pytest.mark.parametrize("planner, fingerprint, name", SHAPE_PLANS, ids=[plan_id(p) for p in SHAPE_PLANS])
def test_deep_supervision_heads_are_at_the_plans_scales_and_the_teachers_shapes(planner, fingerprint, name):
    cm, _, _, (outputs, teacher_outputs) = on_meta(planner, fingerprint, name, lambda s, t, x: (s(x), t(x)))
    scale = torch.ones(len(cm.patch_size))
    expected = []
    for stride in cm.pool_op_kernel_sizes[:-1]:  # nnU-Net's deep-supervision scales: every stage but the bottleneck
        scale = scale / torch.tensor(stride)
        expected.append((1, NUM_CLASSES, *(int(p * s) for p, s in zip(cm.patch_size, scale))))
    assert [tuple(o.shape) for o in outputs] == expected
    assert [o.shape for o in outputs] == [o.shape for o in teacher_outputs]


@pytest.mark.parametrize("planner, fingerprint, name", SHAPE_PLANS, ids=[plan_id(p) for p in SHAPE_PLANS])
def test_encoder_stages_match_the_teachers_stage_for_stage(planner, fingerprint, name):
    """The maps every distillation term reads: one student stage per teacher stage, at the teacher's resolution."""
    cm, student, teacher, ((heads, encoder), reference) = on_meta(
        planner, fingerprint, name, lambda s, t, x: (s(x, return_encoder_maps=True), teacher_maps(t, x))
    )
    assert [m.shape[2:] for m in encoder] == [m.shape[2:] for m in reference.encoder]
    assert [m.shape[1] for m in encoder] == student.encoder.output_channels
    assert [h.shape for h in heads] == [o.shape for o in reference.outputs]
    assert NetworkGeometry.of(student).total_stride == NetworkGeometry.of(teacher).total_stride


def test_without_deep_supervision_it_returns_the_final_output_and_still_every_head_for_the_terms():
    cm = configuration("default", "tiny", "3d_fullres")
    patch = (2, 1, *cm.patch_size)
    student = mobile_student(cm, deep_supervision=False)
    with torch.no_grad():
        output = student(torch.randn(patch))
        heads, _ = student(torch.randn(patch), return_encoder_maps=True)
    assert output.shape == (2, NUM_CLASSES, *cm.patch_size)
    assert len(heads) == cm.network_arch_init_kwargs["n_stages"] - 1 and not student.decoder.deep_supervision


@pytest.mark.parametrize("name", ["2d", "3d_fullres"])
def test_every_parameter_learns_from_the_segmentation_loss(name):
    cm = configuration("default", "tiny", name)
    student = mobile_student(cm)
    outputs = student(torch.randn(2, 1, *cm.patch_size))
    sum(o.square().mean() for o in outputs).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in student.parameters())
    assert all(torch.isfinite(o).all() for o in outputs)


def test_every_spatial_convolution_but_the_stem_is_depthwise():
    student = mobile_student(configuration("default", "anisotropic", "3d_fullres"))
    spatial = [
        (name, m)
        for name, m in student.named_modules()
        if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)) and max(m.kernel_size) > 1
    ]
    assert spatial and all(m.groups == m.in_channels == m.out_channels for n, m in spatial if "stem" not in n)
    assert [n for n, m in spatial if m.groups == 1] == ["encoder.stem.convs.0.conv"]


def test_the_plans_anisotropic_strides_and_kernels_are_kept():
    cm = configuration("default", "anisotropic", "3d_fullres")
    student = mobile_student(cm)
    assert [list(s) for s in student.encoder.strides] == [list(s) for s in cm.pool_op_kernel_sizes]
    first_blocks = [stage[0] for stage in student.encoder.stages]
    assert [list(b.depthwise.conv.stride) for b in first_blocks] == [list(s) for s in cm.pool_op_kernel_sizes]
    kernels = cm.network_arch_init_kwargs["kernel_sizes"]
    assert [list(b.depthwise.conv.kernel_size) for b in first_blocks] == [list(k) for k in kernels]
    assert any(len(set(s)) > 1 for s in cm.pool_op_kernel_sizes)  # the plan is anisotropic


def test_it_takes_the_plans_normalisation_and_nonlinearity():
    cm = configuration("default", "small", "2d")
    modules = list(mobile_student(cm).modules())
    norm_op, nonlin = (cm.network_arch_init_kwargs[key].rsplit(".", 1)[-1] for key in ("norm_op", "nonlin"))
    assert any(type(m).__name__ == norm_op for m in modules) and any(type(m).__name__ == nonlin for m in modules)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in modules)


def test_a_new_residual_block_is_the_identity_and_a_strided_one_is_not_residual():
    student = mobile_student(configuration("default", "small", "2d"))
    residual = [m for m in student.modules() if isinstance(m, InvertedResidualBlock) and m.residual]
    x = torch.randn(2, residual[0].project.conv.out_channels, 8, 8)
    with torch.no_grad():
        assert torch.equal(residual[0](x), x)
    strided = student.encoder.stages[1][0]
    assert any(s > 1 for s in strided.depthwise.conv.stride) and not strided.residual


@pytest.mark.parametrize("size_name", SIZES)
def test_sized_students_are_rebuilt_from_the_trainer_name_as_nnunetv2_predict_does(size_name):
    cm = configuration("default", "small", "3d_fullres")
    for method in ("Student", "HLFD"):
        trainer = find_trainer_class(f"nnUNetTrainer{method}Mobile{size_name}")
        predicted = trainer.build_network_architecture(None, cm, 1, NUM_CLASSES, enable_deep_supervision=False)
        trained = mobile_student(cm, SIZES[size_name])
        assert isinstance(predicted, InvertedResidualUNet) and trainer.student_size == SIZES[size_name]
        assert {k: v.shape for k, v in predicted.state_dict().items()} == {
            k: v.shape for k, v in trained.state_dict().items()
        }


def test_each_mobile_method_is_its_methods_trainer_with_the_mobile_student():
    from nnunetv2_hlfd.training.distillation_trainer import nnUNetTrainerDistillation

    for method in ("HLFD", "KD", "AT", "FitNets", "SKD", "SKD_Holistic", "IFVD", "CWD", "EMKD"):
        mobile, resnet = (find_trainer_class(f"nnUNetTrainer{method}{suffix}") for suffix in ("Mobile", ""))
        assert issubclass(mobile, nnUNetTrainerDistillation) and mobile.distillation == resnet.distillation
        assert mobile.student_family == INVERTED_RESIDUAL and resnet.student_family != INVERTED_RESIDUAL
        assert mobile.student_size.budget == MOBILE_BUDGET == 0.1


def test_a_budget_no_student_fits_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"No inverted-residual student fits 0% .* Raise StudentSize.budget"):
        mobile_student(configuration("default", "tiny", "2d"), StudentSize(budget=1e-4))
