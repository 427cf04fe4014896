"""The distillation weight's factor at an epoch: constant, linear warm-up, cosine (DPRD-3D-MedSeg's schedules)."""

import math

import pytest

from nnunetv2_hlfd.distillation.schedule import weight_factor


@pytest.mark.parametrize("epoch", [0, 1, 499, 999])
def test_constant_is_the_full_weight_at_every_epoch(epoch):
    assert weight_factor("constant", 0, epoch, 1000) == 1.0


@pytest.mark.parametrize("epoch, factor", [(0, 0.0), (1, 0.01), (50, 0.5), (99, 0.99), (100, 1.0), (999, 1.0)])
def test_warmup_rises_linearly_to_the_full_weight_at_its_last_epoch(epoch, factor):
    assert weight_factor("warmup", 100, epoch, 1000) == pytest.approx(factor)


@pytest.mark.parametrize("epoch, factor", [(0, 1.0), (250, 0.5 + 0.5 * math.cos(math.pi / 4)), (500, 0.5), (1000, 0.0)])
def test_cosine_falls_from_the_full_weight_to_zero_over_the_training(epoch, factor):
    assert weight_factor("cosine", 0, epoch, 1000) == pytest.approx(factor, abs=1e-12)


def test_cosine_falls_only_after_its_warm_up():
    assert weight_factor("cosine", 100, 50, 1000) == pytest.approx(0.5)
    assert weight_factor("cosine", 100, 100, 1000) == 1.0
    assert weight_factor("cosine", 100, 550, 1000) == pytest.approx(0.5)
    assert 0 < weight_factor("cosine", 100, 999, 1000) < 1e-4  # the last epoch: near 0


def test_the_factor_depends_on_the_epoch_alone_not_on_the_calls_before():
    """What makes a resumed run's weight at an epoch the uninterrupted run's."""
    along = [weight_factor("cosine", 3, epoch, 10) for epoch in range(10)]
    assert [weight_factor("cosine", 3, epoch, 10) for epoch in reversed(range(10))] == along[::-1]


def test_an_unknown_schedule_is_refused_naming_the_schedules():
    with pytest.raises(ValueError, match=r"'linear'.*\('constant', 'warmup', 'cosine'\)"):
        weight_factor("linear", 0, 0, 10)
