"""The HLFD reference code's segmentation loss (training/reference_loss.py) against a literal port of
the authors' calc_loss (tests/distillation/peer_reference_ports.py): values and gradients."""

import pytest
import torch
from reference_ports import reference_ports

from nnunetv2_hlfd.training.reference_loss import ReferenceFocalDiceLoss


def value_and_gradient(loss_function, logits: torch.Tensor, *args) -> tuple[torch.Tensor, torch.Tensor]:
    logits = logits.clone().requires_grad_(True)
    value = loss_function(logits, *args)
    value.backward()
    return value.detach(), logits.grad


@pytest.mark.parametrize("spatial", [(12, 10), (4, 6, 5)], ids=["2d", "3d"])
def test_two_class_loss_is_the_reference_calc_loss(spatial):
    generator = torch.Generator().manual_seed(0)
    logits = 2 * torch.randn(3, 2, *spatial, generator=generator)
    labels = torch.randint(0, 2, (3, 1, *spatial), generator=generator).float()
    one_hot = torch.cat([1 - labels, labels], dim=1)  # the reference's mask: background, tumour

    value, gradient = value_and_gradient(ReferenceFocalDiceLoss(regions=False), logits, labels)
    expected, expected_gradient = value_and_gradient(reference_ports().reference_calc_loss, logits, one_hot)

    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    torch.testing.assert_close(gradient, expected_gradient, rtol=1e-5, atol=1e-8)


def test_one_region_is_the_reference_calc_loss_on_logits_zero_and_the_region_logit():
    generator = torch.Generator().manual_seed(1)
    region_logit = 2 * torch.randn(2, 1, 9, 7, generator=generator)
    mask = torch.randint(0, 2, (2, 1, 9, 7), generator=generator).float()

    value, gradient = value_and_gradient(ReferenceFocalDiceLoss(regions=True), region_logit, mask)

    def reference_on_two_classes(z, target):
        return reference_ports().reference_calc_loss(torch.cat([torch.zeros_like(z), z], dim=1), target)

    expected, expected_gradient = value_and_gradient(
        reference_on_two_classes, region_logit, torch.cat([1 - mask, mask], 1)
    )
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    torch.testing.assert_close(gradient, expected_gradient, rtol=1e-5, atol=1e-8)


def test_dice_pools_the_foreground_classes_and_leaves_the_background_out():
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 6, 6, generator=generator)
    labels = torch.randint(0, 3, (2, 1, 6, 6), generator=generator).float()
    probabilities = torch.softmax(logits, 1)
    one_hot = torch.zeros_like(logits).scatter_(1, labels.long(), 1.0)

    def pooled_dice(p, g):
        return 1 - (2 * (p * g).sum() + 1) / (p.sum() + g.sum() + 1)

    loss = ReferenceFocalDiceLoss(regions=False, focal_share=0.0)(logits, labels)
    assert loss.item() == pytest.approx(pooled_dice(probabilities[:, 1:], one_hot[:, 1:]).item(), rel=1e-6)
    assert loss.item() != pytest.approx(pooled_dice(probabilities, one_hot).item(), rel=1e-3)


def test_focal_term_reads_the_true_class_softmax_probability_of_each_voxel_for_several_classes():
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 4, 5, 5, generator=generator)
    labels = torch.randint(0, 4, (2, 1, 5, 5), generator=generator).float()
    p_true = torch.softmax(logits, 1).gather(1, labels.long())
    expected = (-((1 - p_true) ** 2) * p_true.log()).mean()
    loss = ReferenceFocalDiceLoss(regions=False, focal_share=1.0)(logits, labels)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
