"""The peer terms on encoder features (peer_features.py): AT, EMKD's importance maps and CWD against ports
of their authors' code, and FitNets' and CWD's adapters, which cannot make an uninformative student match."""

import math

import pytest
import torch
import torch.nn.functional as F
from peer_cases import (
    EMKD_HIGH,
    EMKD_LOW,
    ODD_BOTTLENECKS,
    SIZES,
    assert_same_value_and_gradient,
    emkd_case,
    engine_of,
    features,
    logits,
    term,
)
from term_maps import CLASSES, STUDENT_CHANNELS, TEACHER_CHANNELS, geometry, random_maps

from nnunetv2_hlfd.distillation.maps import (
    UNetMaps,
)
from nnunetv2_hlfd.distillation.terms import TERMS


def test_emkd_imd_is_the_authors_sum_over_the_low_and_high_feature(dims):
    import peer_reference_ports as ports

    student, teacher, target, _, geo, config = emkd_case(dims)
    imd = sum(ports.emkd_importance_maps(student.encoder[k], teacher.encoder[k]) for k in (EMKD_LOW, EMKD_HIGH))
    inputs = [student.encoder[EMKD_LOW], student.encoder[EMKD_HIGH]]
    assert_same_value_and_gradient(TERMS["EMKD_IMD"](geo, config)(student, teacher, target), imd, inputs)


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


def test_at_sum_over_positions_reduction_gives_the_size_free_variant():
    student, teacher = random_maps(STUDENT_CHANNELS, SIZES[2], seed=1), random_maps(TEACHER_CHANNELS, SIZES[2], seed=2)
    size_free = term("AT", geometry(2), {"reduction": "sum_over_positions"})(student, teacher)
    per_position = term("AT", geometry(2))(student, teacher)
    assert 0 < per_position.item() < size_free.item() <= 2 * len(STUDENT_CHANNELS)


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
