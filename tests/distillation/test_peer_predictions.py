"""The peer terms on prediction maps (peer_predictions.py): KD's region KL and temperature option, and
SKD's and IFVD's pixel terms against ports of their authors' code."""

import pytest
from peer_cases import (
    ODD_BOTTLENECKS,
    SIZES,
    assert_same_value_and_gradient,
    logits,
    term,
)
from term_maps import CLASSES, STUDENT_CHANNELS, TEACHER_CHANNELS, geometry, random_maps

from nnunetv2_hlfd.distillation.config import DistillationConfig
from nnunetv2_hlfd.distillation.maps import (
    UNetMaps,
)
from nnunetv2_hlfd.distillation.terms import TERMS


def test_kd_uses_the_bernoulli_kl_for_region_heads():
    student, teacher = random_maps(STUDENT_CHANNELS, SIZES[2], seed=1), random_maps(TEACHER_CHANNELS, SIZES[2], seed=2)
    softmax_value = term("KD", geometry(2))(student, teacher)
    region_value = term("KD", geometry(2, regions=True))(student, teacher)
    assert region_value.item() != pytest.approx(softmax_value.item())


def test_temperature_option_overrides_the_config_temperature_for_that_term_only():
    student, teacher = random_maps(STUDENT_CHANNELS, SIZES[2], seed=1), random_maps(TEACHER_CHANNELS, SIZES[2], seed=2)
    at_one = term("KD", geometry(2), {"temperature": 1.0})(student, teacher)
    config_at_one = TERMS["KD"](geometry(2), DistillationConfig(weights={"KD": 1.0}, temperature=1.0))(student, teacher)
    assert at_one.item() == pytest.approx(config_at_one.item())
    assert at_one.item() != pytest.approx(term("KD", geometry(2))(student, teacher).item())


def test_skd_pixel_term_is_the_authors_batch_summed_cross_entropy_less_the_teacher_entropy(dims):
    import peer_reference_ports as ports

    size = ODD_BOTTLENECKS[dims]
    student, teacher = logits((3, CLASSES, *size), 1, requires_grad=True), logits((3, CLASSES, *size), 2)
    ours = term("SKD_pixel", geometry(dims), {"temperature": 1.0})(UNetMaps([], [student]), UNetMaps([], [teacher]))
    entropy = ports.skd_pixel_wise(teacher, teacher)  # the cross-entropy's part that no student changes
    assert_same_value_and_gradient(ours, ports.skd_pixel_wise(student, teacher) - entropy, [student])


def test_ifvd_pixel_term_is_the_authors_kd(dims):
    import peer_reference_ports as ports

    size = ODD_BOTTLENECKS[dims]
    student, teacher = logits((2, CLASSES, *size), 1, requires_grad=True), logits((2, CLASSES, *size), 2)
    ours = TERMS["IFVD_pixel"](geometry(dims), DistillationConfig(weights={"IFVD_pixel": 1.0}, temperature=1.0))(
        UNetMaps([], [student]), UNetMaps([], [teacher])
    )
    assert_same_value_and_gradient(ours, ports.ifvd_kd(student, teacher), [student])


def test_skd_pixel_voxel_mean_reduction_is_kd_without_the_batch_factor():
    student, teacher = random_maps(STUDENT_CHANNELS, SIZES[2], seed=1), random_maps(TEACHER_CHANNELS, SIZES[2], seed=2)
    assert term("SKD_pixel", geometry(2), {"reduction": "voxel_mean"})(student, teacher).item() == pytest.approx(
        term("KD", geometry(2))(student, teacher).item()
    )
