"""An ensemble teacher as the distillation terms see it: one set of maps, as one teacher hands over.

The terms (distillation/) read a teacher's logits and encoder features; they are not told whether
an ensemble stands behind them. So the ensemble's maps are built such that what each term computes
from them is what it should distil:

- Outputs, per deep-supervision scale: the logits of the members' averaged probabilities, as
  nnUNetv2_ensemble averages them (softmax for labels, sigmoid for regions, each member at T = 1):
  log(mean_m softmax(z_m)) for labels, logit(mean_m sigmoid(z_m)) for regions, computed exactly by
  logsumexp. The terms then apply their temperature T to these logits as to a single teacher's:
  softmax(log p / T) is p**(1/T) renormalised, the ensemble's probabilities tempered exactly as a
  single teacher's are (softmax(z / T) is softmax(z)**(1/T) renormalised), and sigmoid(logit(p) / T)
  likewise. T is applied once, to the averaged prediction, never to the members.
- Encoder features, per stage: the members' maps side by side along the channels, each member's
  map multiplied by one factor per sample. An attention map (distillation/functional.py) is the
  channel mean of x**p, L2-normalised; the factor gives each member's sum over channels of |x|**p
  the members' mean norm, so the attention of the stacked map is exactly the mean of the members'
  (normalised) attention maps for any term that takes a stage's attention at its own resolution
  (IFD, AT, EMKD_IMD), whatever each member's width. UFD, which stacks several stages and
  upsamples them before the attention, gets each stage as that mean, the stages weighted as the
  members weight them on average. Exact for even p (HLFD: 4, AT: 2). Terms that read raw features
  through an adapter sized to the teacher's channels have no such average and refuse an ensemble.

With one member the member's maps are handed over unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nnunetv2_hlfd.distillation.maps import UNetMaps

# Terms that read the teacher's encoder only through attention maps (channel-agnostic).
ATTENTION_FEATURE_TERMS = frozenset({"UFD", "IFD", "AT", "EMKD_IMD"})


def ensemble_maps(members: list[UNetMaps], regions: bool, attention_p: float) -> UNetMaps:
    """One teacher's maps standing for the members' (see the module docstring)."""
    if len(members) == 1:
        return members[0]
    encoder = [
        attention_averaging_stack([m.encoder[k] for m in members], attention_p) for k in range(members[0].num_stages)
    ]
    outputs = [
        averaged_probability_logits([m.outputs[k] for m in members], regions) for k in range(len(members[0].outputs))
    ]
    return UNetMaps(encoder, outputs)


def averaged_probability_logits(logits: list[Tensor], regions: bool) -> Tensor:
    """Logits whose softmax (labels) or sigmoid (regions) is the mean of the members' probabilities."""
    stacked = torch.stack([z.float() for z in logits])
    log_members = math.log(len(logits))
    if regions:
        log_p = torch.logsumexp(torch.nn.functional.logsigmoid(stacked), dim=0) - log_members
        log_not_p = torch.logsumexp(torch.nn.functional.logsigmoid(-stacked), dim=0) - log_members
        return log_p - log_not_p
    return torch.logsumexp(torch.log_softmax(stacked, dim=2), dim=0) - log_members


def attention_averaging_stack(features: list[Tensor], attention_p: float) -> Tensor:
    """The members' maps of one stage along the channels, each scaled so the stack's attention map is
    the mean of the members' attention maps."""
    power_sums = [f.float().abs().pow(attention_p).sum(dim=1).flatten(1) for f in features]
    norms = torch.stack([torch.linalg.vector_norm(s, dim=1) for s in power_sums])  # (members, batch)
    mean_norm = norms.mean(dim=0)
    # An all-zero member map has no attention to weigh; it stays zero whatever its factor.
    factors = torch.where(norms > 0, mean_norm / norms.clamp_min(torch.finfo(torch.float32).tiny), 1.0)
    factors = factors.pow(1.0 / attention_p)
    shape = (-1,) + (1,) * (features[0].ndim - 1)
    return torch.cat([f * factor.view(shape).to(f.dtype) for f, factor in zip(features, factors)], dim=1)
