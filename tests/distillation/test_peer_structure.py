"""The peer structure terms (peer_structure.py): SKD's pairs, IFVD and EMKD's region affinity against
ports of their authors' code; the label terms' ignored voxels and missing target."""

import pytest
import torch
from peer_cases import (
    EMKD_HIGH,
    EMKD_LOW,
    IGNORE,
    ODD_BOTTLENECKS,
    SIZES,
    assert_same_value_and_gradient,
    emkd_case,
    features,
    label_target,
    term,
)
from term_maps import CLASSES, STUDENT_CHANNELS, TEACHER_CHANNELS, geometry, random_maps

from nnunetv2_hlfd.distillation.maps import (
    UNetMaps,
)
from nnunetv2_hlfd.distillation.terms import TERMS


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


def test_label_terms_refuse_to_run_without_a_target():
    with pytest.raises(ValueError, match="IFVD reads the labels"):
        term("IFVD", geometry(2))(random_maps(STUDENT_CHANNELS, SIZES[2]), random_maps(TEACHER_CHANNELS, SIZES[2]))


def test_skd_pair_term_pools_and_normalises_as_the_authors(dims):
    import peer_reference_ports as ports

    shape = (2, 6, *ODD_BOTTLENECKS[dims])
    student, teacher = features(shape, 1, requires_grad=True), features(shape, 2)
    ours = term("SKD_pair", geometry(dims))(UNetMaps([student], []), UNetMaps([teacher], []))
    assert_same_value_and_gradient(ours, ports.skd_pair_wise(student, teacher), [student])


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


def test_emkd_rad_is_the_authors_sum_over_the_low_and_high_feature(dims):
    import peer_reference_ports as ports

    student, teacher, target, one_hot, geo, config = emkd_case(dims)
    rad = sum(
        ports.emkd_region_affinity(student.encoder[k], teacher.encoder[k], one_hot) for k in (EMKD_LOW, EMKD_HIGH)
    )
    inputs = [student.encoder[EMKD_LOW], student.encoder[EMKD_HIGH]]
    assert_same_value_and_gradient(TERMS["EMKD_RAD"](geo, config)(student, teacher, target), rad, inputs)
