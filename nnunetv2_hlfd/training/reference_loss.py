"""The HLFD reference code's segmentation loss, for nnUNetTrainerHLFD_PaperLoss.

vangorade/RethinkingKD_ISBI24, utils/loss_functions.py `calc_loss`: 0.5 focal + 0.5 soft Dice on
the logits of two classes (background, tumour):

- focal, `FocalLoss(gamma=2, alpha=[1, 1])`: -(1 - p_t)**gamma * log p_t, p_t the softmax
  probability of the true class, averaged over voxels. Its (1 - p_t) factor is taken without
  gradient (`Variable(logpt.data.exp())`), so here too: the gradient is that of the weighted log p_t.
- Dice, `dice_loss`: 1 - (2 I + 1) / (P + G + 1) over the softmax of the foreground channels
  (background dropped) and their one-hot labels, each sum over batch, foreground classes and
  voxels at once (smooth 1): always a batch Dice, whatever the plan's batch_dice.

Beyond the reference's two classes: for more classes the focal term reads the true class's
probability from the label map (the reference's `target[:, 1:]` index works for two classes only),
and the Dice keeps every foreground class pooled as the reference pools its one. For regions
(sigmoid heads) each region is its own background/foreground pair: a region's logit z is the
two-class logits (0, z), whose softmax is (1 - sigmoid(z), sigmoid(z)), so for one region this is
the reference exactly; the Dice pools every region (no region is background).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

REFERENCE_FOCAL_GAMMA = 2.0
REFERENCE_FOCAL_SHARE = 0.5  # calc_loss(ce_weight=0.5): 0.5 focal + 0.5 Dice
REFERENCE_DICE_SMOOTH = 1.0


def focal_loss(log_true_probability: Tensor, gamma: float = REFERENCE_FOCAL_GAMMA) -> Tensor:
    """-(1 - p_t)**gamma * log p_t averaged over all entries, the factor (1 - p_t)**gamma without gradient."""
    weight = (1 - log_true_probability.detach().exp()) ** gamma
    return -(weight * log_true_probability).mean()


def pooled_dice_loss(probabilities: Tensor, masks: Tensor, smooth: float = REFERENCE_DICE_SMOOTH) -> Tensor:
    """1 - (2 I + smooth) / (P + G + smooth), each sum over every entry (batch, channels, voxels)."""
    intersection = (probabilities * masks).sum()
    return 1 - (2 * intersection + smooth) / (probabilities.sum() + masks.sum() + smooth)


class ReferenceFocalDiceLoss(nn.Module):
    """0.5 focal + 0.5 foreground soft Dice as the reference code (module docstring), on nnU-Net's
    logits (B, C, *spatial) and target: a label map (B, 1, *spatial), or region masks (B, R, *spatial)
    when `regions`."""

    def __init__(self, regions: bool, gamma: float = REFERENCE_FOCAL_GAMMA, focal_share: float = REFERENCE_FOCAL_SHARE):
        super().__init__()
        self.regions = regions
        self.gamma = gamma
        self.focal_share = focal_share

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        logits = logits.float()
        if self.regions:
            masks = target.float()
            log_true_probability = masks * F.logsigmoid(logits) + (1 - masks) * F.logsigmoid(-logits)
            foreground_probabilities, foreground_masks = torch.sigmoid(logits), masks
        else:
            labels = target[:, :1].long()
            log_probabilities = F.log_softmax(logits, dim=1)
            log_true_probability = log_probabilities.gather(1, labels)
            one_hot = torch.zeros_like(logits).scatter_(1, labels, 1.0)
            foreground_probabilities, foreground_masks = log_probabilities.exp()[:, 1:], one_hot[:, 1:]
        focal = focal_loss(log_true_probability, self.gamma)
        dice = pooled_dice_loss(foreground_probabilities, foreground_masks)
        return self.focal_share * focal + (1 - self.focal_share) * dice
