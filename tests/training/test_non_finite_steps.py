"""A non-finite distillation term or gradient never reaches the weights: the trainer's own step
leaves the term out of the loss (or skips the optimiser step), and the epoch's log says so with a
count. Run on the HLFD trainer built from tiny nnU-Net plans, no dataset needed."""

import math

import pytest
import torch
from offline_hlfd import logging_hlfd_trainer

from nnunetv2_hlfd.speed.offline_trainers import synthetic_batch
from nnunetv2_hlfd.training.distillation_trainer import SKIPPED_STEP


@pytest.fixture
def trainer():
    return logging_hlfd_trainer()


class _NaNGradient(torch.autograd.Function):
    """A finite value whose gradient is NaN, as an overflow inside a term's backward would give."""

    @staticmethod
    def forward(ctx, x):
        ctx.input_shape = x.shape
        return x.sum() * 0

    @staticmethod
    def backward(ctx, grad):
        return torch.full(ctx.input_shape, float("nan"))


def student_weights(trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.unwrapped_network.state_dict().items() if v.is_floating_point()}


def test_a_nan_term_is_left_out_and_the_step_still_trains_finite_weights(trainer):
    trainer.distiller.terms["IFD"].forward = lambda *args, **kwargs: torch.tensor(float("nan"))
    before = student_weights(trainer)
    outputs = [trainer.train_step(synthetic_batch(trainer, seed)) for seed in range(2)]
    after = student_weights(trainer)
    assert all(torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in before), "the finite terms and L_seg still train"
    trainer.on_train_epoch_end(outputs)
    assert any("IFD in 2 step(s)" in line for line in trainer.logged), trainer.logged
    assert math.isnan(trainer.logger.get_checkpoint()["distill_IFD"][-1]), "never finite: NaN epoch mean"


def test_a_non_finite_gradient_skips_the_optimiser_step_and_is_logged(trainer):
    trainer.distiller.terms["UFD"].forward = lambda student, teacher, target=None: _NaNGradient.apply(
        student.encoder[0]
    )
    before = student_weights(trainer)
    outputs = [trainer.train_step(synthetic_batch(trainer))]
    after = student_weights(trainer)
    assert all(torch.equal(before[k], after[k]) for k in before), "no weight moves on a NaN gradient"
    trainer.on_train_epoch_end(outputs)
    assert any(f"{SKIPPED_STEP} in 1 step(s)" in line for line in trainer.logged), trainer.logged
