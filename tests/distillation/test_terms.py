"""The HLFD terms on synthetic 2D and 3D maps: zero on agreement, positive otherwise,
channel-agnostic where the spec says so, gradients to the student and adapters only."""

import math
import re

import pytest
import torch
import torch.nn.functional as F
from term_maps import CLASSES, STUDENT_CHANNELS, TEACHER_CHANNELS, geometry, random_maps

from nnunetv2_hlfd.distillation.config import DistillationConfig, hlfd_config
from nnunetv2_hlfd.distillation.engine import DistillationEngine
from nnunetv2_hlfd.distillation.fast_paths import pointwise
from nnunetv2_hlfd.distillation.functional import attention_map, kl_divergence, resize
from nnunetv2_hlfd.distillation.maps import DistillationGeometry, NetworkGeometry, UNetMaps
from nnunetv2_hlfd.distillation.terms import IFD, IPD, TERMS, UFD, UPD, TermOptionError

SIZES = {2: (32, 32), 3: (32, 32, 32)}  # deep enough that the bottleneck has several positions


@pytest.mark.parametrize("term", [UFD, IFD, UPD, IPD])
def test_term_is_positive_when_student_and_teacher_disagree(term, dims):
    value = term(geometry(dims), hlfd_config())(
        random_maps(STUDENT_CHANNELS, SIZES[dims], seed=1), random_maps(TEACHER_CHANNELS, SIZES[dims], seed=2)
    )
    assert value.ndim == 0 and value.item() > 1e-4


def test_ufd_is_zero_when_student_e0_carries_the_unified_teacher_map(dims):
    teacher = random_maps(TEACHER_CHANNELS, SIZES[dims])
    middle = teacher.encoder[1:-1]
    smallest = middle[-1].shape[2:]
    unified = torch.cat([resize(m, smallest) for m in middle], dim=1)
    student = random_maps(STUDENT_CHANNELS, SIZES[dims])
    student.encoder[0] = resize(unified, SIZES[dims])
    assert UFD(geometry(dims), hlfd_config())(student, teacher).item() == pytest.approx(0, abs=1e-6)


def test_ifd_is_zero_when_every_student_middle_stage_equals_the_teacher_bottleneck(dims):
    teacher = random_maps(TEACHER_CHANNELS, SIZES[dims])
    student = random_maps(STUDENT_CHANNELS, SIZES[dims])
    for k in range(1, len(STUDENT_CHANNELS) - 1):
        student.encoder[k] = teacher.encoder[-1].clone()
    assert IFD(geometry(dims), hlfd_config())(student, teacher).item() == pytest.approx(0, abs=1e-6)


def test_upd_is_zero_when_projected_student_equals_the_fused_teacher(dims):
    geo = geometry(dims, student=(CLASSES,) + STUDENT_CHANNELS[1:])
    term = UPD(geo, hlfd_config())
    with torch.no_grad():  # make the student projection the identity
        term.student_projection.weight.copy_(torch.eye(CLASSES).view(CLASSES, CLASSES, *[1] * dims))
        term.student_projection.bias.zero_()
    teacher = random_maps(TEACHER_CHANNELS, SIZES[dims])
    student = random_maps(geo.student.encoder_channels, SIZES[dims])
    middle = [resize(teacher.outputs[k], SIZES[dims]) for k in range(1, len(TEACHER_CHANNELS) - 2)]
    student.encoder[0] = torch.stack(middle).mean(0)  # what the fusion computes at initialisation
    assert term(student, teacher).item() == pytest.approx(0, abs=1e-5)


IFD_AREA = hlfd_config(terms=("IFD",), options={"IFD": {"student_shrink": "area"}})


def fraction_of_voxels_with_ifd_gradient(config, dims) -> list[float]:
    """For E1 .. E(N-2) (4 to 16 times the bottleneck's size per axis, then twice)."""
    size = (64, 64) if dims == 2 else (32, 32, 32)
    student = random_maps(STUDENT_CHANNELS, size, requires_grad=True, seed=1)
    IFD(geometry(dims), config)(student, random_maps(TEACHER_CHANNELS, size, seed=2)).backward()
    return [(stage.grad.abs().sum(dim=1) > 0).float().mean().item() for stage in student.encoder[1:-1]]


def test_ifd_gradient_reaches_every_student_voxel_with_area_shrinking(dims):
    assert fraction_of_voxels_with_ifd_gradient(IFD_AREA, dims) == [1.0, 1.0, 1.0]


def test_ifd_gradient_reaches_few_voxels_of_the_fine_stages_with_bilinear_shrinking(dims):
    """The paper's default: a bilinear shrink by 4x or more per axis reads 2 of every 4+ voxels per axis."""
    e1, e2, _ = fraction_of_voxels_with_ifd_gradient(hlfd_config(terms=("IFD",)), dims)
    assert e1 <= 0.0625 and e2 <= 0.25


def test_ifd_with_area_shrinking_is_zero_when_each_student_cell_repeats_the_teacher_bottleneck(dims):
    """Area-averaging the attention of a map that repeats each bottleneck value over its cell gives the
    bottleneck's own attention."""
    teacher = random_maps(TEACHER_CHANNELS, SIZES[dims])
    student = random_maps(STUDENT_CHANNELS, SIZES[dims])
    bottleneck = teacher.encoder[-1]
    for k in range(1, len(STUDENT_CHANNELS) - 1):
        student.encoder[k] = F.interpolate(bottleneck, size=student.encoder[k].shape[2:], mode="nearest")
    assert IFD(geometry(dims), IFD_AREA)(student, teacher).item() == pytest.approx(0, abs=1e-6)
    student.encoder[1] = student.encoder[1] * torch.rand_like(student.encoder[1])  # no longer constant per cell
    assert IFD(geometry(dims), IFD_AREA)(student, teacher).item() > 1e-4


def test_ifd_refuses_an_unknown_shrinking():
    with pytest.raises(ValueError, match=r"IFD option student_shrink='nearest' is not one of \('bilinear', 'area'\)"):
        IFD(geometry(2), hlfd_config(terms=("IFD",), options={"IFD": {"student_shrink": "nearest"}}))


def test_a_misspelt_option_is_refused_naming_the_known_options():
    typo = hlfd_config(options={"IFD": {"student_shrinks": "area"}})
    with pytest.raises(
        TermOptionError, match=r"IFD has no option 'student_shrinks'; IFD's options are \['student_shrink'\]"
    ):
        DistillationEngine(typo, geometry(2))


def test_an_option_for_a_term_that_takes_none_is_refused_saying_so():
    with pytest.raises(TermOptionError, match="UFD has no option 'p'; UFD takes no options"):
        DistillationEngine(hlfd_config(options={"UFD": {"p": 2}}), geometry(2))


@pytest.mark.parametrize(
    "term, options, problem",
    [
        ("KD", {"temperature": "4"}, "KD option temperature='4' is not of type int or float"),
        ("KD", {"all_scales": 1}, "KD option all_scales=1 is not of type bool"),
        ("FitNets", {"stage": True}, "FitNets option stage=True is not of type int"),
        ("SKD_pixel", {"reduction": "mean"}, "SKD_pixel option reduction='mean' is not one of"),
    ],
)
def test_an_option_of_the_wrong_kind_is_refused(term, options, problem):
    config = DistillationConfig(weights={term: 1.0}, options={term: options})
    with pytest.raises(TermOptionError, match=re.escape(problem)):
        DistillationEngine(config, geometry(2))


def test_every_problem_of_a_term_s_options_is_named_at_once():
    config = DistillationConfig(weights={"CWD": 1.0}, options={"CWD": {"feature": True, "temperature": None}})
    with pytest.raises(TermOptionError) as refusal:
        DistillationEngine(config, geometry(2))
    assert len(refusal.value.problems) == 2
    assert "CWD's options are ['features', 'temperature']" in refusal.value.problems[0]


def test_a_skipped_term_s_options_are_checked_too():
    typo = hlfd_config(options={"IFD": {"student_shrinks": "area"}})
    with pytest.raises(TermOptionError, match="student_shrinks"):
        DistillationEngine(typo, strided_geometry((32, 32), (32, 32)))  # IFD is skipped on this geometry


@pytest.mark.parametrize("name", sorted(TERMS))
def test_every_declared_default_is_a_value_its_option_takes(name):
    for key, declared in TERMS[name].options.items():
        assert declared.default is None or declared.problem(declared.default) is None, key


def test_declared_options_are_read_and_given_ones_override_them():
    assert IFD(geometry(2), hlfd_config()).student_shrink == "bilinear"
    assert IFD(geometry(2), IFD_AREA).student_shrink == "area"


def strided_geometry(patch_size, total_stride):
    network = NetworkGeometry(TEACHER_CHANNELS, len(patch_size), total_stride)
    return DistillationGeometry(
        network, NetworkGeometry(STUDENT_CHANNELS, len(patch_size), total_stride), CLASSES, False, patch_size=patch_size
    )


def test_ifd_is_skipped_and_logged_when_the_teacher_bottleneck_is_one_voxel():
    messages = []
    engine = DistillationEngine(hlfd_config(), strided_geometry((32, 32), (32, 32)), log=messages.append)
    assert engine.term_names == ["UFD", "UPD", "IPD"]
    assert messages == [
        "Distillation term IFD skipped: the teacher's bottleneck is a single voxel "
        "(patch [32, 32] / total stride [32, 32]), where a map over positions is the same for every network, "
        "so the term is identically 0."
    ]
    assert "IFD" in DistillationEngine(hlfd_config(), strided_geometry((64, 32), (32, 32))).term_names


def test_geometry_round_trips_its_patch_and_strides():
    geometry_with_patch = strided_geometry((40, 64), (8, 16))
    restored = DistillationGeometry.from_dict(geometry_with_patch.to_dict())
    assert restored.teacher_bottleneck_size == (5, 4) and restored.student.total_stride == (8, 16)
    assert restored.patch_size == (40, 64) and restored.teacher.total_stride == (8, 16)


def test_network_geometry_reads_the_total_stride_of_a_unet():
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    network = PlainConvUNet(1, 3, (4, 8, 16), torch.nn.Conv2d, 3, [[1, 1], [2, 2], [2, 1]], 1, CLASSES, 1)
    assert NetworkGeometry.of(network) == NetworkGeometry((4, 8, 16), 2)
    assert NetworkGeometry.of(network).total_stride == (4, 2)


def agreeing_teacher(dims, size, stages=5, seed=0):
    """A fixed teacher whose heads agree: each O(k) is the final logits O(0) area-averaged to E(k)'s size."""
    generator = torch.Generator().manual_seed(seed)
    coarse = 3 * torch.randn(2, CLASSES, *[s // 8 for s in size], generator=generator)
    final = resize(coarse, size) + 0.5 * torch.randn(2, CLASSES, *size, generator=generator)
    outputs = [final] + [
        F.interpolate(final, size=[s // 2**k for s in size], mode="area") for k in range(1, stages - 1)
    ]
    encoder = [torch.randn(2, 4, *[s // 2**k for s in size], generator=generator) for k in range(stages)]
    return UNetMaps(encoder, outputs)


def agreement_with_final_output(logits, teacher):
    return (logits.argmax(1) == teacher.outputs[0].argmax(1)).float().mean().item()


def normalised_entropy(logits):
    probabilities = logits.softmax(1)
    return (-(probabilities * probabilities.clamp_min(1e-12).log()).sum(1).mean() / math.log(CLASSES)).item()


def test_upd_target_keeps_the_teachers_prediction_while_the_student_projection_learns_it():
    """The issue-11 scenario: UPD alone, nnU-Net's SGD and clipping for 300 steps on a student stem. A target
    trained by the KL co-adapts with the projection until both are uniform (agreement 0.88 -> 0.31)."""
    torch.manual_seed(0)
    teacher = agreeing_teacher(2, (64, 64))
    engine = DistillationEngine(hlfd_config(terms=("UPD",)), geometry(2, teacher=(4,) * 5, student=(8,) * 5))
    upd = engine.terms["UPD"]
    image = teacher.outputs[0] + torch.randn_like(teacher.outputs[0])
    stem = torch.nn.Conv2d(CLASSES, 8, kernel_size=3, padding=1)

    def student():
        return UNetMaps([F.leaky_relu(stem(image)), *teacher.encoder[1:]], teacher.outputs)

    def student_agreement():
        with torch.no_grad():
            return agreement_with_final_output(pointwise(upd.student_projection, student().encoder[0]), teacher)

    target_before = upd.unified_teacher_map(teacher)
    agreement_before = agreement_with_final_output(target_before, teacher)
    entropy_before = normalised_entropy(target_before)
    student_before = student_agreement()
    parameters = [*stem.parameters(), *engine.parameters()]
    optimizer = torch.optim.SGD(parameters, lr=1e-2, momentum=0.99, nesterov=True, weight_decay=3e-5)
    for _ in range(300):
        optimizer.zero_grad()
        engine(student(), teacher)["UPD"].backward()
        torch.nn.utils.clip_grad_norm_(parameters, 12)
        optimizer.step()
    target_after = upd.unified_teacher_map(teacher)
    assert agreement_before > 0.8
    assert agreement_with_final_output(target_after, teacher) == pytest.approx(agreement_before, abs=0.01)
    assert normalised_entropy(target_after) == pytest.approx(entropy_before, abs=0.01)
    assert student_agreement() > max(0.8, student_before + 0.3)


def test_no_hlfd_adapter_sits_on_the_teacher_side():
    """Every trained parameter of HLFD's terms maps the student; none shapes a target."""
    engine = DistillationEngine(hlfd_config(), geometry(2))
    assert {name for name, _ in engine.named_parameters()} == {
        "terms.UPD.student_projection.weight",
        "terms.UPD.student_projection.bias",
    }
    assert all(not list(TERMS[name](geometry(2), hlfd_config()).parameters()) for name in ("UFD", "IFD", "IPD"))


def test_ipd_is_zero_when_every_student_head_predicts_the_teacher_output(dims):
    # Spatially constant logits survive any resize unchanged.
    class_logits = torch.randn(2, CLASSES, *[1] * dims)
    teacher = random_maps(TEACHER_CHANNELS, SIZES[dims])
    teacher.outputs[0] = class_logits.expand(-1, -1, *SIZES[dims])
    student = random_maps(STUDENT_CHANNELS, SIZES[dims])
    student.outputs = [class_logits.expand(-1, -1, *o.shape[2:]) for o in student.outputs]
    assert IPD(geometry(dims), hlfd_config())(student, teacher).item() == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("term", [UFD, IFD])
def test_feature_terms_do_not_depend_on_the_student_channel_count(term, dims):
    teacher = random_maps(TEACHER_CHANNELS, SIZES[dims])
    student = random_maps(STUDENT_CHANNELS, SIZES[dims], seed=3)
    doubled = UNetMaps([torch.cat([m, m], dim=1) for m in student.encoder], student.outputs)
    config = hlfd_config()
    narrow = term(geometry(dims), config)(student, teacher)
    wide = term(geometry(dims, student=tuple(2 * c for c in STUDENT_CHANNELS)), config)(doubled, teacher)
    assert narrow.item() == pytest.approx(wide.item(), rel=1e-5)


@pytest.mark.parametrize("term", [UFD, IFD])
def test_feature_terms_do_not_depend_on_the_teacher_channel_count(term, dims):
    """Attention is a channel mean, so a teacher whose every stage is duplicated teaches the same."""
    teacher = random_maps(TEACHER_CHANNELS, SIZES[dims], seed=4)
    student = random_maps(STUDENT_CHANNELS, SIZES[dims], seed=3)
    doubled = UNetMaps([torch.cat([m, m], dim=1) for m in teacher.encoder], teacher.outputs)
    narrow = term(geometry(dims), hlfd_config())(student, teacher)
    wide = term(geometry(dims, teacher=tuple(2 * c for c in TEACHER_CHANNELS)), hlfd_config())(student, doubled)
    assert narrow.item() == pytest.approx(wide.item(), rel=1e-5)


def test_gradients_reach_student_and_adapters_but_never_the_teacher(dims):
    engine = DistillationEngine(hlfd_config(), geometry(dims))
    student = random_maps(STUDENT_CHANNELS, SIZES[dims], requires_grad=True, seed=1)
    teacher = random_maps(TEACHER_CHANNELS, SIZES[dims], requires_grad=True, seed=2)
    engine.weighted_sum(engine(student, teacher)).backward()
    # E0 (UFD, UPD), the middle stages E1..E(N-2) (IFD) and the middle heads O(1)..O(N-2) (IPD)
    taught = [*student.encoder[:-1], *student.outputs[1:]]
    assert all(m.grad is not None and m.grad.abs().sum() > 0 for m in taught)
    assert student.encoder[-1].grad is None and student.outputs[0].grad is None  # no HLFD term reads them
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in engine.parameters())
    assert all(m.grad is None for m in [*teacher.encoder, *teacher.outputs])


def test_shallow_networks_skip_terms_and_say_so_once():
    messages = []
    two_stage = geometry(2, teacher=(8, 16), student=(4, 8))
    engine = DistillationEngine(hlfd_config(), two_stage, log=messages.append)
    assert engine.term_names == []
    assert sorted(m.split()[2] for m in messages) == ["IFD", "IPD", "UFD", "UPD"]
    values = engine(random_maps((4, 8), (16, 16)), random_maps((8, 16), (16, 16)))
    assert values == {} and engine.weighted_sum(values) == 0


def test_upd_needs_four_teacher_stages_while_the_others_need_three():
    engine = DistillationEngine(hlfd_config(), geometry(2, teacher=(8, 16, 32), student=(4, 8, 16)), log=lambda m: None)
    assert engine.term_names == ["UFD", "IFD", "IPD"]


def test_hlfd_weights_are_the_papers():
    assert hlfd_config().weights == {"UFD": 0.45, "IFD": 0.45, "UPD": 0.05, "IPD": 0.05}
    assert hlfd_config(("UPD",)).weights == {"UPD": 0.05}


def test_label_kl_matches_torch_kl_div_scaled_by_t_squared():
    s, t = torch.randn(2, 4, 5, 6), torch.randn(2, 4, 5, 6)
    reference = (
        F.kl_div(F.log_softmax(s / 4, 1), F.log_softmax(t / 4, 1), log_target=True, reduction="sum") / (2 * 5 * 6) * 16
    )
    assert kl_divergence(s, t, 4.0).item() == pytest.approx(reference.item(), rel=1e-5)


def test_kl_to_several_students_is_the_sum_of_torch_kl_divs():
    students, t = [torch.randn(2, 4, 5, 6) for _ in range(3)], torch.randn(2, 4, 5, 6)
    reference = (
        sum(
            F.kl_div(F.log_softmax(s / 4, 1), F.log_softmax(t / 4, 1), log_target=True, reduction="sum")
            for s in students
        )
        / (2 * 5 * 6)
        * 16
    )
    assert kl_divergence(students, t, 4.0, regions=False).item() == pytest.approx(reference.item(), rel=1e-5)


def test_region_kl_is_the_two_outcome_kl_of_each_region_summed():
    s, t = torch.randn(2, 3, 5, 6), torch.randn(2, 3, 5, 6)

    def two_outcomes(x):
        return torch.stack([F.logsigmoid(x / 2), F.logsigmoid(-x / 2)])

    reference = F.kl_div(two_outcomes(s), two_outcomes(t), log_target=True, reduction="sum") / (2 * 5 * 6) * 4
    assert kl_divergence(s, t, 2.0, regions=True).item() == pytest.approx(reference.item(), rel=1e-5)
    assert kl_divergence([s, s], t, 2.0, regions=True).item() == pytest.approx(2 * reference.item(), rel=1e-5)


def test_region_kl_is_zero_on_agreement_positive_otherwise_and_finite_when_saturated():
    t = torch.randn(2, 3, 8, 8)
    assert kl_divergence(t, t, 4.0, regions=True).item() == pytest.approx(0, abs=1e-6)
    assert kl_divergence(torch.randn(2, 3, 8, 8), t, 4.0, regions=True).item() > 0
    assert torch.isfinite(kl_divergence(torch.full_like(t, -1e4), torch.full_like(t, 1e4), 1.0, regions=True))


def test_upd_uses_bernoulli_kl_for_region_outputs():
    teacher, student = random_maps(TEACHER_CHANNELS, (32, 32), seed=2), random_maps(STUDENT_CHANNELS, (32, 32))
    softmax_value = UPD(geometry(2), hlfd_config())(student, teacher)
    region_value = UPD(geometry(2, regions=True), hlfd_config())(student, teacher)
    assert region_value.item() != pytest.approx(softmax_value.item())


def test_attention_of_an_all_zero_map_is_finite():
    assert torch.equal(attention_map(torch.zeros(2, 4, 8, 8)), torch.zeros(2, 64))


def test_terms_are_float32_under_autocast():
    engine = DistillationEngine(hlfd_config(), geometry(2))
    student = random_maps(STUDENT_CHANNELS, (32, 32))
    teacher = random_maps(TEACHER_CHANNELS, (32, 32))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        values = engine(
            UNetMaps([m.bfloat16() for m in student.encoder], [m.bfloat16() for m in student.outputs]),
            UNetMaps([m.bfloat16() for m in teacher.encoder], [m.bfloat16() for m in teacher.outputs]),
        )
    assert {v.dtype for v in values.values()} == {torch.float32}
