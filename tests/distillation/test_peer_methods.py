"""Every peer method's terms through the registry and the engine (KD, AT, FitNets, SKD with its optional
holistic term, IFVD, CWD, EMKD) on synthetic 2D and 3D maps: zero when the student reproduces the
teacher, positive otherwise, gradients to the student and adapters only, region targets, finite on
degenerate inputs, shallow networks, the teacher maps each declares; and the trainers' declarations
(trainers/nnUNetTrainerPeerMethods.py) against the authors' weights."""

import pytest
import torch
from peer_cases import (
    ODD_BOTTLENECKS,
    PEER_TERMS,
    SIZES,
    VARIANT_IDS,
    VARIANTS,
    assert_same_value_and_gradient,
    engine_of,
    features,
    label_target,
    logits,
    peer_method_trainers,
    region_target,
    set_identity,
    term,
)
from term_maps import CLASSES, STUDENT_CHANNELS, TEACHER_CHANNELS, geometry, random_maps

from nnunetv2_hlfd.distillation.config import DistillationConfig
from nnunetv2_hlfd.distillation.engine import DistillationEngine
from nnunetv2_hlfd.distillation.maps import (
    TEACHER_ENCODER,
    TEACHER_OUTPUTS,
    DistillationGeometry,
    NetworkGeometry,
    UNetMaps,
)


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


# ---- the trainers' weights as the authors run them (peer_reference_ports.py) --------------------------


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


def test_ifvd_trainer_has_the_authors_three_terms_and_weights():
    distillation = peer_method_trainers().nnUNetTrainerIFVD.distillation
    assert dict(distillation.weights) == {"IFVD": 200.0, "IFVD_pixel": 10.0, "IFVD_holistic": 0.1}
    assert distillation.temperature == 1.0
    # lambda_adv 0.001 for the student, lambda_d 0.1 for the critic (YukangWang/IFVD, options.py)
    assert distillation.weights["IFVD_holistic"] * distillation.option(
        "IFVD_holistic", "generator_scale", 1
    ) == pytest.approx(0.001)


@pytest.mark.parametrize("name,choices", [("SKD_pixel", "voxel_mean"), ("AT", "mean_over_positions")])
def test_an_unknown_reduction_is_refused_naming_the_choices(name, choices):
    with pytest.raises(ValueError, match=f"{name} option reduction='average' is not one of .*{choices}"):
        term(name, geometry(2), {"reduction": "average"})


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
