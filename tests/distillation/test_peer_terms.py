"""The peer methods' terms (KD, AT, FitNets, SKD with its optional holistic term, IFVD, CWD, EMKD)
on synthetic 2D and 3D maps: zero when the student reproduces the teacher, positive otherwise,
gradients to the student and adapters only, region and ignore-label targets, finite on degenerate
inputs, shallow networks."""

import math

import pytest
import torch
import torch.nn.functional as F
from test_terms import random_maps

from nnunetv2_hlfd.distillation.config import DistillationConfig
from nnunetv2_hlfd.distillation.engine import DistillationEngine
from nnunetv2_hlfd.distillation.maps import (
    TEACHER_ENCODER,
    TEACHER_OUTPUTS,
    DistillationGeometry,
    NetworkGeometry,
    UNetMaps,
)
from nnunetv2_hlfd.distillation.terms import TERMS

CLASSES = 3
IGNORE = CLASSES  # nnU-Net puts the ignore label right after the classes
SIZES = {2: (64, 64), 3: (32, 32, 32)}  # the bottleneck keeps several positions, and labels at them
TEACHER_CHANNELS = (8, 16, 32, 64, 64)
STUDENT_CHANNELS = (4, 8, 16, 32, 32)
PEER_TERMS = [
    "KD",
    "AT",
    "FitNets",
    "SKD_pixel",
    "SKD_pair",
    "IFVD",
    "IFVD_pixel",
    "CWD",
    "EMKD_PMD",
    "EMKD_IMD",
    "EMKD_RAD",
]
# (term, options): every term, plus the options that change what is distilled
VARIANTS = [(name, {}) for name in PEER_TERMS] + [("KD", {"all_scales": True}), ("CWD", {"features": True})]
VARIANT_IDS = [name + ("+" + "+".join(options) if options else "") for name, options in VARIANTS]


def geometry(dims, teacher=TEACHER_CHANNELS, student=STUDENT_CHANNELS, regions=False, ignore_label=None):
    return DistillationGeometry(
        NetworkGeometry(teacher, dims), NetworkGeometry(student, dims), CLASSES, regions, ignore_label
    )


def label_target(size, batch=2, seed=0):
    """Class 0 background with a class-1 and a class-2 block in every sample; the class-1 block starts at
    the origin, so nearest-neighbour label sampling (IFVD, EMKD) finds both classes on coarse grids."""
    target = torch.zeros(batch, 1, *size)
    half, quarter = [s // 2 for s in size], [s // 4 for s in size]
    target[(slice(None), 0, *[slice(0, h) for h in half])] = 1
    target[(slice(None), 0, *[slice(h, h + q) for q, h in zip(quarter, half)])] = 2
    return target


def region_target(size, batch=2):
    """Nested regions (kidney-and-tumour style): region 0 contains region 1; region 2 is empty."""
    labels = label_target(size, batch)[:, 0]
    return torch.stack([(labels > 0), (labels == 2), torch.zeros_like(labels, dtype=torch.bool)], dim=1).float()


def term(name, geo, options=None):
    return TERMS[name](geo, DistillationConfig(weights={name: 1.0}, options={name: options} if options else {}))


def set_identity(conv: torch.nn.Module) -> None:
    with torch.no_grad():
        conv.weight.copy_(torch.eye(conv.weight.shape[0]).view(conv.weight.shape))
        conv.bias.zero_()


@pytest.fixture(params=[2, 3], ids=["2d", "3d"])
def dims(request):
    return request.param


@pytest.mark.parametrize("name,options", VARIANTS, ids=VARIANT_IDS)
def test_term_is_zero_when_the_student_reproduces_the_teacher(name, options, dims):
    same = geometry(dims, student=TEACHER_CHANNELS)
    distillation = term(name, same, options)
    for adapter in distillation.children():  # FitNets' regressor, CWD's feature adapter
        set_identity(adapter)
    teacher = random_maps(TEACHER_CHANNELS, SIZES[dims], seed=2)
    student = UNetMaps([m.clone() for m in teacher.encoder], [m.clone() for m in teacher.outputs])
    value = distillation(student, teacher, label_target(SIZES[dims]))
    assert value.item() == pytest.approx(0, abs=1e-5)


@pytest.mark.parametrize("name,options", VARIANTS, ids=VARIANT_IDS)
def test_term_is_positive_when_student_and_teacher_disagree(name, options, dims):
    value = term(name, geometry(dims), options)(
        random_maps(STUDENT_CHANNELS, SIZES[dims], seed=1),
        random_maps(TEACHER_CHANNELS, SIZES[dims], seed=2),
        label_target(SIZES[dims]),
    )
    assert value.ndim == 0 and value.dtype == torch.float32 and value.item() > 1e-5


@pytest.mark.parametrize("name,options", VARIANTS, ids=VARIANT_IDS)
def test_gradients_reach_the_student_and_adapters_but_never_the_teacher(name, options, dims):
    engine = DistillationEngine(DistillationConfig(weights={name: 1.0}, options={name: options}), geometry(dims))
    student = random_maps(STUDENT_CHANNELS, SIZES[dims], requires_grad=True, seed=1)
    teacher = random_maps(TEACHER_CHANNELS, SIZES[dims], requires_grad=True, seed=2)
    engine.weighted_sum(engine(student, teacher, label_target(SIZES[dims]))).backward()
    student_maps = [*student.encoder, *student.outputs]
    assert any(m.grad is not None and m.grad.abs().sum() > 0 for m in student_maps)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in engine.parameters())
    assert all(m.grad is None for m in [*teacher.encoder, *teacher.outputs])


def test_terms_with_adapters_have_them_and_the_rest_do_not():
    with_adapters = {name for name, options in VARIANTS if list(term(name, geometry(2), options).parameters())}
    assert with_adapters == {"FitNets", "CWD"}  # CWD only with features=True
    assert not list(term("CWD", geometry(2)).parameters())


@pytest.mark.parametrize("name", PEER_TERMS)
def test_region_targets_and_sigmoid_heads_work(name, dims):
    size = SIZES[dims]
    value = term(name, geometry(dims, regions=True))(
        random_maps(STUDENT_CHANNELS, size, seed=1), random_maps(TEACHER_CHANNELS, size, seed=2), region_target(size)
    )
    assert torch.isfinite(value) and value.item() > 1e-5


def test_kd_uses_the_bernoulli_kl_for_region_heads():
    student, teacher = random_maps(STUDENT_CHANNELS, SIZES[2], seed=1), random_maps(TEACHER_CHANNELS, SIZES[2], seed=2)
    softmax_value = term("KD", geometry(2))(student, teacher)
    region_value = term("KD", geometry(2, regions=True))(student, teacher)
    assert region_value.item() != pytest.approx(softmax_value.item())


@pytest.mark.parametrize("name", ["IFVD", "EMKD_RAD"])
def test_student_features_under_ignored_voxels_do_not_change_label_terms(name):
    size = SIZES[2]
    target = label_target(size)
    target[..., size[1] // 2 :] = IGNORE  # right half unannotated
    teacher = random_maps(TEACHER_CHANNELS, size, seed=2)
    student = random_maps(STUDENT_CHANNELS, size, seed=1)
    changed = UNetMaps([m.clone() for m in student.encoder], student.outputs)
    for m in changed.encoder:
        m[..., m.shape[-1] // 2 :] += 5.0
    with_ignore = term(name, geometry(2, ignore_label=IGNORE))
    assert with_ignore(changed, teacher, target).item() == pytest.approx(
        with_ignore(student, teacher, target).item(), rel=1e-5
    )
    target[target == IGNORE] = 0  # the same change counts once those voxels are annotated background
    plain = term(name, geometry(2))
    assert plain(changed, teacher, target).item() != pytest.approx(plain(student, teacher, target).item(), rel=1e-3)


@pytest.mark.parametrize("name", ["IFVD", "EMKD_RAD"])
def test_label_terms_are_zero_when_every_voxel_is_ignored(name):
    target = torch.full((2, 1, *SIZES[2]), float(IGNORE))
    value = term(name, geometry(2, ignore_label=IGNORE))(
        random_maps(STUDENT_CHANNELS, SIZES[2], seed=1), random_maps(TEACHER_CHANNELS, SIZES[2], seed=2), target
    )
    assert value.item() == 0


@pytest.mark.parametrize("name,options", VARIANTS, ids=VARIANT_IDS)
def test_terms_are_finite_for_all_zero_maps_and_empty_classes(name, options, dims):
    student = random_maps(STUDENT_CHANNELS, SIZES[dims])
    teacher = random_maps(TEACHER_CHANNELS, SIZES[dims])
    zeros = [
        UNetMaps([torch.zeros_like(m) for m in maps.encoder], [torch.zeros_like(m) for m in maps.outputs])
        for maps in (student, teacher)
    ]
    background_only = torch.zeros(2, 1, *SIZES[dims])
    assert torch.isfinite(term(name, geometry(dims), options)(*zeros, background_only))


def test_label_terms_refuse_to_run_without_a_target():
    with pytest.raises(ValueError, match="IFVD reads the labels"):
        term("IFVD", geometry(2))(random_maps(STUDENT_CHANNELS, SIZES[2]), random_maps(TEACHER_CHANNELS, SIZES[2]))


def test_shallow_networks_skip_fitnets_with_a_reason_and_run_the_rest():
    messages = []
    two_stage = geometry(2, teacher=(8, 16), student=(4, 8))
    engine = DistillationEngine(
        DistillationConfig(weights={name: 1.0 for name in PEER_TERMS}), two_stage, log=messages.append
    )
    assert messages == [
        ("Distillation term FitNets skipped: the shallower network has 2 stages, too few for this term.")
    ]
    values = engine(
        random_maps((4, 8), (16, 16), seed=1), random_maps((8, 16), (16, 16), seed=2), label_target((16, 16))
    )
    assert set(values) == set(PEER_TERMS) - {"FitNets"}
    assert all(torch.isfinite(v) for v in values.values())


def test_a_deeper_custom_teacher_is_matched_by_stage_index():
    deeper = geometry(2, teacher=TEACHER_CHANNELS + (64,), student=STUDENT_CHANNELS)
    engine = DistillationEngine(DistillationConfig(weights={name: 1.0 for name in PEER_TERMS}), deeper)
    values = engine(
        random_maps(STUDENT_CHANNELS, SIZES[2], seed=1),
        random_maps(deeper.teacher.encoder_channels, SIZES[2], seed=2),
        label_target(SIZES[2]),
    )
    assert set(values) == set(PEER_TERMS) and all(torch.isfinite(v) for v in values.values())


def test_terms_are_float32_under_autocast():
    engine = DistillationEngine(DistillationConfig(weights={name: 1.0 for name in PEER_TERMS}), geometry(2))
    student = random_maps(STUDENT_CHANNELS, SIZES[2], seed=1)
    teacher = random_maps(TEACHER_CHANNELS, SIZES[2], seed=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        values = engine(
            UNetMaps([m.bfloat16() for m in student.encoder], [m.bfloat16() for m in student.outputs]),
            UNetMaps([m.bfloat16() for m in teacher.encoder], [m.bfloat16() for m in teacher.outputs]),
            label_target(SIZES[2]),
        )
    assert {v.dtype for v in values.values()} == {torch.float32}


def test_temperature_option_overrides_the_config_temperature_for_that_term_only():
    student, teacher = random_maps(STUDENT_CHANNELS, SIZES[2], seed=1), random_maps(TEACHER_CHANNELS, SIZES[2], seed=2)
    at_one = term("KD", geometry(2), {"temperature": 1.0})(student, teacher)
    config_at_one = TERMS["KD"](geometry(2), DistillationConfig(weights={"KD": 1.0}, temperature=1.0))(student, teacher)
    assert at_one.item() == pytest.approx(config_at_one.item())
    assert at_one.item() != pytest.approx(term("KD", geometry(2))(student, teacher).item())


def test_options_for_a_term_the_method_does_not_use_are_refused():
    with pytest.raises(ValueError, match="Options for \\['KDD'\\]"):
        DistillationConfig(weights={"KD": 1.0}, options={"KDD": {"temperature": 1.0}})
    config = DistillationConfig(weights={"KD": 1.0}, options={"KD": {"temperature": 1.0}})
    assert config.option("KD", "temperature", 4.0) == 1.0 and config.option("KD", "all_scales", False) is False


@pytest.mark.parametrize("name,options", VARIANTS, ids=VARIANT_IDS)
def test_a_term_needs_no_teacher_map_it_does_not_declare(name, options):
    distillation = term(name, geometry(2), options)
    teacher = random_maps(TEACHER_CHANNELS, SIZES[2], seed=2)
    # What the trainer's teacher forward leaves out when no term declares it (maps.teacher_maps).
    teacher = UNetMaps(
        teacher.encoder if TEACHER_ENCODER in distillation.teacher_reads else [],
        teacher.outputs if TEACHER_OUTPUTS in distillation.teacher_reads else [],
    )
    value = distillation(random_maps(STUDENT_CHANNELS, SIZES[2], seed=1), teacher, label_target(SIZES[2]))
    assert torch.isfinite(value)


def test_feature_only_methods_let_the_teacher_skip_its_decoder():
    def needs(weights, options=None):
        config = DistillationConfig(weights=weights, options=options or {})
        return DistillationEngine(config, geometry(2)).teacher_reads

    assert needs({"AT": 1.0, "FitNets": 1.0, "IFVD": 1.0, "SKD_pair": 1.0, "EMKD_RAD": 1.0}) == {TEACHER_ENCODER}
    assert needs({"CWD": 1.0}, {"CWD": {"features": True}}) == {TEACHER_ENCODER}
    assert needs({"CWD": 1.0}) == needs({"KD": 1.0}) == {TEACHER_OUTPUTS}


# ---- SKD's adversarial holistic term ----------------------------------------------------
def holistic(dims, regions=False):
    return term("SKD_holistic", geometry(dims, regions=regions))


def critic_difference(distillation, student, teacher):
    """The term's value without the gradient reversal: what the critic minimises."""
    return (
        distillation.score(distillation.probabilities(student.outputs[0])).mean()
        - distillation.score(distillation.probabilities(teacher.outputs[0])).mean()
    )


def critic_convolutions(distillation):
    return [m for m in distillation.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]


def largest_weight_over_bound(distillation, clip):
    """max |parameter| * sqrt(fan-in) / clip over the critic: <= 1 when clipped to its box."""
    return max(
        p.abs().max().item() * m.weight[0].numel() ** 0.5 / clip
        for m in critic_convolutions(distillation)
        for p in m.parameters()
    )


@pytest.mark.parametrize("regions", [False, True], ids=["softmax", "sigmoid"])
def test_holistic_term_is_finite_and_clips_its_critic_in_2d_and_3d(dims, regions):
    distillation = holistic(dims, regions)
    assert {m.weight.ndim - 2 for m in critic_convolutions(distillation)} == {dims}
    with torch.no_grad():
        for parameter in distillation.parameters():
            parameter.mul_(100.0)  # far outside the box, as an unclipped critic drifts
    value = distillation(
        random_maps(STUDENT_CHANNELS, SIZES[dims], seed=1), random_maps(TEACHER_CHANNELS, SIZES[dims], seed=2)
    )
    assert value.ndim == 0 and value.dtype == torch.float32 and torch.isfinite(value) and value.item() != 0
    assert largest_weight_over_bound(distillation, clip=2.0) == pytest.approx(1.0)


def test_holistic_term_is_zero_when_the_student_reproduces_the_teacher(dims):
    teacher = random_maps(TEACHER_CHANNELS, SIZES[dims], seed=2)
    student = UNetMaps(teacher.encoder, [m.clone() for m in teacher.outputs])
    assert holistic(dims)(student, teacher).item() == pytest.approx(0, abs=1e-6)


def test_holistic_critic_steps_decrease_the_term(dims):
    distillation = holistic(dims)
    student = random_maps(STUDENT_CHANNELS, SIZES[dims], seed=1)
    teacher = random_maps(TEACHER_CHANNELS, SIZES[dims], seed=2)
    optimizer = torch.optim.SGD(distillation.parameters(), lr=1e-3)
    values = []
    for _ in range(3):
        optimizer.zero_grad()
        value = distillation(student, teacher)
        value.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in distillation.parameters())
        optimizer.step()
        values.append(value.item())
    values.append(distillation(student, teacher).item())
    assert values == sorted(values, reverse=True) and values[-1] < values[0]


def test_holistic_term_reverses_the_gradient_the_student_receives(dims):
    distillation = holistic(dims)
    student = random_maps(STUDENT_CHANNELS, SIZES[dims], requires_grad=True, seed=1)
    teacher = random_maps(TEACHER_CHANNELS, SIZES[dims], seed=2)
    distillation(student, teacher).backward()  # clips the critic too, before the plain gradient below
    received = student.outputs[0].grad
    (minimising,) = torch.autograd.grad(critic_difference(distillation, student, teacher), student.outputs[0])
    assert minimising.abs().sum() > 0
    torch.testing.assert_close(received, -minimising)
    # A descent step on the student therefore raises the critic's loss: the student fools the critic.
    with torch.no_grad():
        before = critic_difference(distillation, student, teacher)
        student.outputs[0] -= 10.0 * received / received.norm()
        assert critic_difference(distillation, student, teacher) > before


def test_holistic_term_needs_only_the_teacher_outputs_and_has_a_trained_critic():
    distillation = holistic(2)
    assert distillation.teacher_reads == {TEACHER_OUTPUTS}
    engine = DistillationEngine(DistillationConfig(weights={"SKD_holistic": 0.1}), geometry(2))
    assert {name.split(".")[2] for name, _ in engine.named_parameters()} == {"critic"}


def test_holistic_term_options_set_the_clip_and_the_width():
    distillation = term("SKD_holistic", geometry(2), {"clip": 0.05, "width": 4})
    distillation(random_maps(STUDENT_CHANNELS, SIZES[2], seed=1), random_maps(TEACHER_CHANNELS, SIZES[2], seed=2))
    assert largest_weight_over_bound(distillation, clip=0.05) == pytest.approx(1.0)
    assert distillation.critic[0].out_channels == 4


def peer_method_trainers():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "trainers" / "nnUNetTrainerPeerMethods.py"
    spec = importlib.util.spec_from_file_location("peer_method_trainers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_skd_leaves_the_holistic_term_off_and_skd_holistic_adds_it():
    trainers = peer_method_trainers()
    assert set(trainers.nnUNetTrainerSKD.distillation.weights) == {"SKD_pixel", "SKD_pair"}
    holistic_weights = dict(trainers.nnUNetTrainerSKD_Holistic.distillation.weights)
    assert holistic_weights == {**trainers.nnUNetTrainerSKD.distillation.weights, "SKD_holistic": 0.1}
    assert trainers.nnUNetTrainerSKD_Holistic.distillation.temperature == 1.0


def test_every_peer_trainer_docstring_states_its_weights_and_temperature():
    import re

    trainers = peer_method_trainers()
    classes = [
        c
        for name, c in vars(trainers).items()
        if name.startswith("nnUNetTrainer")
        and getattr(c, "distillation", None) is not None
        and c.__module__ == trainers.__name__
    ]
    assert len(classes) >= 8
    for trainer in classes:
        doc = " ".join(trainer.__doc__.split())
        for name, weight in trainer.distillation.weights.items():
            assert re.search(rf"\b{name} {weight:g}(\.0)?\b", doc), f"{trainer.__name__} does not state {name} {weight}"
        temperature = f"T = {trainer.distillation.temperature:g}"
        assert temperature in doc or "no temperature" in doc, f"{trainer.__name__} does not state its temperature"


# ---- the peers as their authors wrote them: against ports of their code (peer_reference_ports.py) --------
def logits(shape, seed, requires_grad=False):
    return (3 * torch.randn(shape, generator=torch.Generator().manual_seed(seed))).requires_grad_(requires_grad)


def features(shape, seed, requires_grad=False):
    """Non-negative, as after a ReLU (attention maps raise features to a power)."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)).requires_grad_(requires_grad)


ODD_BOTTLENECKS = {2: (5, 7), 3: (3, 5, 7)}  # int(0.5 * size) and ceil(0.5 * size) differ on every axis


def assert_same_value_and_gradient(ours, reference, inputs):
    torch.testing.assert_close(ours, reference.to(ours.dtype), rtol=1e-5, atol=1e-7)
    for got, expected in zip(
        torch.autograd.grad(ours, inputs, retain_graph=True), torch.autograd.grad(reference, inputs)
    ):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-8)


def engine_of(trainer_name, geo):
    return DistillationEngine(getattr(peer_method_trainers(), trainer_name).distillation, geo)


def test_skd_pixel_term_is_the_authors_batch_summed_cross_entropy_less_the_teacher_entropy(dims):
    import peer_reference_ports as ports

    size = ODD_BOTTLENECKS[dims]
    student, teacher = logits((3, CLASSES, *size), 1, requires_grad=True), logits((3, CLASSES, *size), 2)
    ours = term("SKD_pixel", geometry(dims), {"temperature": 1.0})(UNetMaps([], [student]), UNetMaps([], [teacher]))
    entropy = ports.skd_pixel_wise(teacher, teacher)  # the cross-entropy's part that no student changes
    assert_same_value_and_gradient(ours, ports.skd_pixel_wise(student, teacher) - entropy, [student])


def test_skd_pair_term_pools_and_normalises_as_the_authors(dims):
    import peer_reference_ports as ports

    shape = (2, 6, *ODD_BOTTLENECKS[dims])
    student, teacher = features(shape, 1, requires_grad=True), features(shape, 2)
    ours = term("SKD_pair", geometry(dims))(UNetMaps([student], []), UNetMaps([teacher], []))
    assert_same_value_and_gradient(ours, ports.skd_pair_wise(student, teacher), [student])


def test_skd_trainers_weight_the_terms_as_the_authors_run(dims):
    import peer_reference_ports as ports

    size = ODD_BOTTLENECKS[dims]
    student_logits, teacher_logits = logits((3, CLASSES, *size), 1, requires_grad=True), logits((3, CLASSES, *size), 2)
    student_bottleneck, teacher_bottleneck = features((3, 6, *size), 3, requires_grad=True), features((3, 6, *size), 4)
    engine = engine_of("nnUNetTrainerSKD", geometry(dims, teacher=(6,), student=(6,)))
    ours = engine.weighted_sum(
        engine(UNetMaps([student_bottleneck], [student_logits]), UNetMaps([teacher_bottleneck], [teacher_logits]))
    )
    # run_train_val.sh: lambda_pi 10, lambda_pa 0.5
    reference = 10 * (
        ports.skd_pixel_wise(student_logits, teacher_logits) - ports.skd_pixel_wise(teacher_logits, teacher_logits)
    ) + 0.5 * ports.skd_pair_wise(student_bottleneck, teacher_bottleneck)
    assert_same_value_and_gradient(ours, reference, [student_logits, student_bottleneck])


def test_ifvd_term_equals_the_authors_criterion_with_nearest_labels_over_all_voxels(dims):
    import peer_reference_ports as ports

    full = (8, 12, 16)[-dims:]
    coarse = tuple(s // 4 for s in full)
    labels = torch.randint(0, CLASSES + 1, (2, *full), generator=torch.Generator().manual_seed(5))  # CLASSES: ignored
    student, teacher = features((2, 5, *coarse), 1, requires_grad=True), features((2, 5, *coarse), 2)
    ours = term("IFVD", geometry(dims, ignore_label=IGNORE))(
        UNetMaps([student], []), UNetMaps([teacher], []), labels.unsqueeze(1).float()
    )
    assert_same_value_and_gradient(ours, ports.ifvd_ifv(student, teacher, labels, CLASSES), [student])


def test_ifvd_pixel_term_is_the_authors_kd(dims):
    import peer_reference_ports as ports

    size = ODD_BOTTLENECKS[dims]
    student, teacher = logits((2, CLASSES, *size), 1, requires_grad=True), logits((2, CLASSES, *size), 2)
    ours = TERMS["IFVD_pixel"](geometry(dims), DistillationConfig(weights={"IFVD_pixel": 1.0}, temperature=1.0))(
        UNetMaps([], [student]), UNetMaps([], [teacher])
    )
    assert_same_value_and_gradient(ours, ports.ifvd_kd(student, teacher), [student])


def test_ifvd_trainer_has_the_authors_three_terms_and_weights():
    distillation = peer_method_trainers().nnUNetTrainerIFVD.distillation
    assert dict(distillation.weights) == {"IFVD": 200.0, "IFVD_pixel": 10.0, "IFVD_holistic": 0.1}
    assert distillation.temperature == 1.0
    # lambda_adv 0.001 for the student, lambda_d 0.1 for the critic (YukangWang/IFVD, options.py)
    assert distillation.weights["IFVD_holistic"] * distillation.option(
        "IFVD_holistic", "generator_scale", 1
    ) == pytest.approx(0.001)


def test_generator_scale_scales_the_students_adversarial_gradient_and_not_the_critics():
    def gradients(generator_scale):
        distillation = term("SKD_holistic", geometry(2), {"generator_scale": generator_scale})
        torch.manual_seed(0)  # the same critic for both
        for parameter in distillation.parameters():
            torch.nn.init.normal_(parameter, std=0.1)
        student = random_maps(STUDENT_CHANNELS, SIZES[2], requires_grad=True, seed=1)
        distillation(student, random_maps(TEACHER_CHANNELS, SIZES[2], seed=2)).backward()
        return student.outputs[0].grad, [p.grad for p in distillation.parameters()]

    student_full, critic_full = gradients(1.0)
    student_scaled, critic_scaled = gradients(0.01)
    assert student_full.abs().sum() > 0
    torch.testing.assert_close(student_scaled, 0.01 * student_full)
    for scaled, full in zip(critic_scaled, critic_full):
        torch.testing.assert_close(scaled, full)


EMKD_CHANNELS = {"teacher": (4, 8, 12, 16, 16), "student": (2, 4, 6, 8, 8)}


def test_emkd_imd_and_rad_are_the_authors_sums_over_the_low_and_high_feature(dims):
    import peer_reference_ports as ports

    full = (16, 32, 32)[-dims:]
    generator = torch.Generator().manual_seed(7)
    labels = (torch.rand(3, *full, generator=generator) > 0.7).long()
    labels[2] = 0  # a sample without tumour: the authors' mean over samples counts it
    target = labels.unsqueeze(1).float()
    one_hot = F.one_hot(labels, 2).movedim(-1, 1).float()
    student = UNetMaps(
        [
            features((3, c, *(s // 2**k for s in full)), 10 + k, requires_grad=True)
            for k, c in enumerate(EMKD_CHANNELS["student"])
        ],
        [],
    )
    teacher = UNetMaps(
        [features((3, c, *(s // 2**k for s in full)), 20 + k) for k, c in enumerate(EMKD_CHANNELS["teacher"])], []
    )
    geo = DistillationGeometry(
        NetworkGeometry(EMKD_CHANNELS["teacher"], dims), NetworkGeometry(EMKD_CHANNELS["student"], dims), 2, False
    )
    config = DistillationConfig(weights={"EMKD_IMD": 1.0, "EMKD_RAD": 1.0}, attention_p=4.0)
    low, high = 1, 3  # after conv1 (1/2) and after layer2 (1/8) of their ResNet18
    imd = sum(ports.emkd_importance_maps(student.encoder[k], teacher.encoder[k]) for k in (low, high))
    rad = sum(ports.emkd_region_affinity(student.encoder[k], teacher.encoder[k], one_hot) for k in (low, high))
    inputs = [student.encoder[low], student.encoder[high]]
    assert_same_value_and_gradient(TERMS["EMKD_IMD"](geo, config)(student, teacher, target), imd, inputs)
    assert_same_value_and_gradient(TERMS["EMKD_RAD"](geo, config)(student, teacher, target), rad, inputs)


def test_at_trainer_loss_is_the_authors_beta_times_the_position_means_summed_over_stages(dims):
    import peer_reference_ports as ports

    size = SIZES[dims]
    student = UNetMaps(
        [
            features((2, c, *(s // 2**k for s in size)), 30 + k, requires_grad=True)
            for k, c in enumerate(STUDENT_CHANNELS)
        ],
        [torch.zeros(2, CLASSES, *size)],
    )
    teacher = UNetMaps(
        [features((2, c, *(s // 2**k for s in size)), 40 + k) for k, c in enumerate(TEACHER_CHANNELS)], []
    )
    engine = engine_of("nnUNetTrainerAT", geometry(dims))
    ours = engine.weighted_sum(engine(student, teacher))
    reference = ports.attention_transfer_objective(student.encoder, teacher.encoder, beta=1e3)
    assert_same_value_and_gradient(ours, reference, list(student.encoder))


def test_cwd_trainer_loss_is_mmrazors_segmentation_configuration(dims):
    import peer_reference_ports as ports

    size = ODD_BOTTLENECKS[dims]
    student, teacher = logits((2, CLASSES, *size), 1, requires_grad=True), logits((2, CLASSES, *size), 2)
    engine = engine_of("nnUNetTrainerCWD", geometry(dims))
    ours = engine.weighted_sum(engine(UNetMaps([], [student]), UNetMaps([], [teacher])))
    # configs/distill/mmseg/cwd/cwd_logits_pspnet_r101_d8_pspnet_r18_d8_512x1024_cityscapes_80k.py
    assert_same_value_and_gradient(ours, ports.mmrazor_cwd(student, teacher, tau=1.0, loss_weight=5.0), [student])


# ---- no adapter on the target side (the UPD trap): training the adapters cannot move the teacher's map ----
def adapters_trained_alone(distillation, student, teacher, steps=300):
    optimizer = torch.optim.Adam(distillation.parameters(), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        value = distillation(student, teacher)
        value.backward()
        optimizer.step()
    return distillation(student, teacher).item()


def test_fitnets_regressor_cannot_fit_an_uninformative_student_below_the_hints_own_variance(dims):
    """With the student's features all zero the regressor can only learn a constant per channel, so
    the hint loss cannot fall below the hint's variance around its channel means; an adapter on the
    hint's side could drive both to a common constant and the loss to 0, as UPD's fusion did."""
    teacher = random_maps(TEACHER_CHANNELS, SIZES[dims], seed=2)
    student = UNetMaps([torch.zeros(2, c, *m.shape[2:]) for c, m in zip(STUDENT_CHANNELS, teacher.encoder)], [])
    distillation = term("FitNets", geometry(dims))
    hint = teacher.encoder[distillation.stage]
    floor = (hint - hint.mean(dim=(0, *range(2, hint.ndim)), keepdim=True)).pow(2).mean().item()
    trained = adapters_trained_alone(distillation, student, teacher)
    assert floor * (1 - 1e-4) <= trained <= floor * 1.01


def test_cwd_feature_adapter_cannot_make_an_uninformative_student_match(dims):
    """A constant student map is a uniform distribution over positions whatever the adapter: the term
    stays the teacher's own divergence from uniform, T**2 * mean over channels of (log P - entropy)."""
    teacher = random_maps(TEACHER_CHANNELS, SIZES[dims], seed=2)
    student = UNetMaps([torch.zeros(2, c, *m.shape[2:]) for c, m in zip(STUDENT_CHANNELS, teacher.encoder)], [])
    distillation = term("CWD", geometry(dims), {"features": True, "temperature": 1.0})
    bottleneck = teacher.encoder[-1].flatten(2)
    log_p = F.log_softmax(bottleneck, dim=2)
    floor = (math.log(bottleneck.shape[2]) + (log_p.exp() * log_p).sum(2)).mean().item()
    assert adapters_trained_alone(distillation, student, teacher, steps=50) == pytest.approx(floor, rel=1e-4)


@pytest.mark.parametrize("name,choices", [("SKD_pixel", "voxel_mean"), ("AT", "mean_over_positions")])
def test_an_unknown_reduction_is_refused_naming_the_choices(name, choices):
    with pytest.raises(ValueError, match=f"{name} option reduction='average' is not one of .*{choices}"):
        term(name, geometry(2), {"reduction": "average"})


def test_reduction_options_give_the_size_and_batch_free_variants():
    student, teacher = random_maps(STUDENT_CHANNELS, SIZES[2], seed=1), random_maps(TEACHER_CHANNELS, SIZES[2], seed=2)
    assert term("SKD_pixel", geometry(2), {"reduction": "voxel_mean"})(student, teacher).item() == pytest.approx(
        term("KD", geometry(2))(student, teacher).item()
    )
    size_free = term("AT", geometry(2), {"reduction": "sum_over_positions"})(student, teacher)
    per_position = term("AT", geometry(2))(student, teacher)
    assert 0 < per_position.item() < size_free.item() <= 2 * len(STUDENT_CHANNELS)


# ---- a one-voxel teacher bottleneck ------------------------------------------------------
BOTTLENECK_TERMS = [("SKD_pair", {}), ("IFVD", {}), ("CWD", {"features": True})]


def one_voxel_bottleneck_geometry():
    stride = (16, 16)  # the 5-stage networks' total stride; a 16 x 16 patch leaves one bottleneck voxel
    return DistillationGeometry(
        NetworkGeometry(TEACHER_CHANNELS, 2, stride),
        NetworkGeometry(STUDENT_CHANNELS, 2, stride),
        CLASSES,
        False,
        patch_size=(16, 16),
    )


@pytest.mark.parametrize("name, options", BOTTLENECK_TERMS, ids=[n for n, _ in BOTTLENECK_TERMS])
def test_a_bottleneck_term_is_identically_zero_on_a_one_voxel_bottleneck(name, options):
    student, teacher = random_maps(STUDENT_CHANNELS, (16, 16), seed=1), random_maps(TEACHER_CHANNELS, (16, 16), seed=2)
    assert teacher.encoder[-1].shape[2:] == (1, 1)
    assert term(name, geometry(2), options)(student, teacher, label_target((16, 16))).item() == pytest.approx(
        0, abs=1e-7
    )


@pytest.mark.parametrize("name, options", BOTTLENECK_TERMS, ids=[n for n, _ in BOTTLENECK_TERMS])
def test_a_bottleneck_term_is_skipped_and_logged_once_on_a_one_voxel_bottleneck(name, options):
    messages = []
    config = DistillationConfig(weights={name: 1.0, "KD": 1.0}, options={name: options})
    engine = DistillationEngine(config, one_voxel_bottleneck_geometry(), log=messages.append)
    assert engine.term_names == ["KD"]
    assert messages == [
        f"Distillation term {name} skipped: the teacher's bottleneck is a single voxel (patch [16, 16] / total "
        "stride [16, 16]), where a map over positions is the same for every network, so the term is identically 0."
    ]


def test_cwd_on_logits_runs_on_a_one_voxel_bottleneck():
    engine = DistillationEngine(DistillationConfig(weights={"CWD": 1.0}), one_voxel_bottleneck_geometry())
    assert engine.term_names == ["CWD"]
