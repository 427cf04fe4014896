"""SKD's and IFVD's adversarial holistic terms (peer_adversarial.py): the critic's clip, its training,
the reversed gradient the student receives and the generator scale."""

import pytest
import torch
from peer_cases import (
    SIZES,
    term,
)
from term_maps import STUDENT_CHANNELS, TEACHER_CHANNELS, geometry, random_maps

from nnunetv2_hlfd.distillation.config import DistillationConfig
from nnunetv2_hlfd.distillation.engine import DistillationEngine
from nnunetv2_hlfd.distillation.maps import (
    TEACHER_OUTPUTS,
    UNetMaps,
)


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
