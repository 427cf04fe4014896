"""HLFD_GRADIENT_SHARE=1 logs, on the first step of each epoch, each weighted term's gradient on the student
next to the segmentation loss's, without changing the step the trainer takes."""

import math

import pytest
import torch
from offline_hlfd import logging_hlfd_trainer

from nnunetv2_hlfd.speed.offline_trainers import synthetic_batch
from nnunetv2_hlfd.training.gradient_share import SEGMENTATION, describe, gradient_shares
from nnunetv2_hlfd.utilities.environment import UserFacingError


def test_norms_and_cosines_are_those_of_the_gradients_and_nothing_reaches_grad():
    weight = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    unused = torch.nn.Parameter(torch.ones(2))
    losses = {SEGMENTATION: (weight * torch.tensor([1.0, 0.0])).sum(), "against": -2 * weight[0], "across": weight[1]}
    shares = gradient_shares(losses, [weight, unused])
    assert shares[SEGMENTATION].norm == pytest.approx(1.0) and shares[SEGMENTATION].cosine == pytest.approx(1.0)
    assert shares["against"].norm == pytest.approx(2.0) and shares["against"].cosine == pytest.approx(-1.0)
    assert shares["across"].cosine == pytest.approx(0.0)
    assert weight.grad is None and unused.grad is None
    assert describe(shares) == "segmentation 1; against 2 (2.00x, cos -1.00); across 1 (1.00x, cos +0.00)"


def test_a_loss_without_gradient_has_no_cosine():
    weight = torch.nn.Parameter(torch.ones(3))
    shares = gradient_shares({SEGMENTATION: weight.sum(), "constant": torch.tensor(2.0)}, [weight])
    assert shares["constant"].norm == 0 and math.isnan(shares["constant"].cosine)


def gradient_lines(trainer) -> list[str]:
    return [line for line in trainer.logged if line.startswith("gradient on the student's weights")]


def test_first_step_of_each_epoch_is_measured_and_steps_the_same(monkeypatch):
    monkeypatch.setenv("HLFD_GRADIENT_SHARE", "1")
    torch.manual_seed(0)
    measured = logging_hlfd_trainer()
    torch.manual_seed(0)
    monkeypatch.setenv("HLFD_GRADIENT_SHARE", "0")
    plain = logging_hlfd_trainer()
    measured.network.load_state_dict(plain.network.state_dict())
    measured.distiller.load_state_dict(plain.distiller.state_dict())
    for trainer in (measured, plain):
        trainer.on_train_epoch_start()
        for seed in range(2):
            trainer.train_step(synthetic_batch(trainer, seed))
    (line,) = gradient_lines(measured)  # the first step only
    assert "epoch 0" in line and all(f"{term} " in line for term in ("UFD", "IFD", "UPD", "IPD"))
    assert line.split(": ", 1)[1].startswith(f"{SEGMENTATION} ") and not gradient_lines(plain)
    for (name, a), b in zip(measured.network.state_dict().items(), plain.network.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), f"{name} stepped differently while measured"


def test_a_misspelt_setting_is_refused(monkeypatch):
    monkeypatch.setenv("HLFD_GRADIENT_SHARE", "sometimes")
    with pytest.raises(UserFacingError, match="HLFD_GRADIENT_SHARE='sometimes' is not a yes/no value"):
        logging_hlfd_trainer()
