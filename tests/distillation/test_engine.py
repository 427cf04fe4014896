"""The engine's one call per step: the weighted total of the finite terms, every term's value, and the
names of the terms left out as non-finite; terms registered by importing the package."""

import subprocess
import sys

import pytest
import torch
from term_maps import STUDENT_CHANNELS, TEACHER_CHANNELS, geometry, random_maps

from nnunetv2_hlfd.distillation.config import hlfd_config
from nnunetv2_hlfd.distillation.engine import DistillationEngine
from nnunetv2_hlfd.distillation.maps import READS_ENCODER, READS_ENCODER_AND_OUTPUTS


def test_loss_is_the_weighted_sum_of_every_terms_value():
    engine = DistillationEngine(hlfd_config(), geometry(2))
    loss = engine.loss(random_maps(STUDENT_CHANNELS, (32, 32), seed=1), random_maps(TEACHER_CHANNELS, (32, 32), seed=2))
    assert list(loss.values) == ["UFD", "IFD", "UPD", "IPD"] and loss.non_finite == []
    expected = sum(weight * loss.values[name].item() for name, weight in hlfd_config().weights.items())
    assert loss.total.item() == pytest.approx(expected, rel=1e-6) and loss.total.item() > 0


def test_loss_leaves_a_non_finite_term_out_of_the_total_and_names_it():
    engine = DistillationEngine(hlfd_config(), geometry(2))
    engine.terms["IFD"].forward = lambda *args, **kwargs: torch.tensor(float("nan"))
    loss = engine.loss(random_maps(STUDENT_CHANNELS, (32, 32), seed=1), random_maps(TEACHER_CHANNELS, (32, 32), seed=2))
    assert loss.non_finite == ["IFD"] and torch.isnan(loss.values["IFD"])
    finite = {name: value for name, value in loss.values.items() if name != "IFD"}
    assert torch.isfinite(loss.total) and loss.total.item() == pytest.approx(engine.weighted_sum(finite).item())


def test_loss_of_a_network_too_shallow_for_every_term_is_zero():
    engine = DistillationEngine(hlfd_config(), geometry(2, teacher=(8, 16), student=(4, 8)), log=lambda m: None)
    loss = engine.loss(random_maps((4, 8), (16, 16)), random_maps((8, 16), (16, 16)))
    assert loss.total == 0 and loss.values == {} and loss.non_finite == []


def test_teacher_reads_are_the_maps_the_applicable_terms_read():
    assert DistillationEngine(hlfd_config(), geometry(2)).teacher_reads == READS_ENCODER_AND_OUTPUTS
    assert DistillationEngine(hlfd_config(terms=("UFD", "IFD")), geometry(2)).teacher_reads == READS_ENCODER


def test_importing_any_distillation_module_registers_every_term():
    """Registration is the package's (distillation/__init__.py), not a side effect of importing the engine."""
    code = "from nnunetv2_hlfd.distillation.terms import TERMS; print(sorted(TERMS))"
    names = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'KD'" in names and "'UFD'" in names and "'EMKD_RAD'" in names


def test_the_schedules_factor_scales_every_terms_weight():
    engine = DistillationEngine(hlfd_config(), geometry(2))
    student, teacher = random_maps(STUDENT_CHANNELS, (32, 32), seed=1), random_maps(TEACHER_CHANNELS, (32, 32), seed=2)
    full, scaled = engine.loss(student, teacher), engine.loss(student, teacher, scale=0.25)
    assert scaled.total.item() == pytest.approx(0.25 * full.total.item(), rel=1e-6)
    assert all(torch.equal(scaled.values[name], full.values[name]) for name in full.values)  # logged unweighted
