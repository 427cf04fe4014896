"""The tensor operations every distillation term is built from, written once for 2D and 3D.

Each function takes maps shaped (B, C, *spatial) and works for any spatial rank; the
interpolation mode follows from the rank, never from a 2D/3D branch in the caller.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

_INTERPOLATION_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}

# Channels resized at a time when an attention map is taken of an upsampled stack:
# bounds the memory of resizing hundreds of teacher channels to full resolution.
_ATTENTION_CHUNK_CHANNELS = 32


def spatial_size(x: Tensor) -> tuple[int, ...]:
    return tuple(x.shape[2:])


def resize(x: Tensor, size: Sequence[int]) -> Tensor:
    """(Bi|tri)linear resize with align_corners=False, chosen by the spatial rank."""
    size = tuple(int(s) for s in size)
    if spatial_size(x) == size:
        return x
    return F.interpolate(x, size=size, mode=_INTERPOLATION_MODES[x.ndim - 2], align_corners=False)


def smallest_spatial_size(maps: Sequence[Tensor]) -> tuple[int, ...]:
    return min((spatial_size(m) for m in maps), key=lambda s: torch.Size(s).numel())


def attention_map(x: Tensor, p: float = 4.0, size: Sequence[int] | None = None) -> Tensor:
    """a(x): channel mean of x**p, flattened over positions, L2-normalised per sample.

    With `size`, x is first resized to it; that is done a few channels at a time so a
    wide teacher stack never exists at full resolution all at once (the result is
    identical to resizing the whole stack, because resizing acts per channel).
    """
    x = x.float()
    if size is None or spatial_size(x) == tuple(size):
        powered_sum = x.pow(p).sum(dim=1)
    elif float(p).is_integer() and p >= 1 and size[-1] > x.shape[-1]:
        powered_sum = _upsampled_power_sum(x, int(p), tuple(size))
    else:
        powered_sum = sum(resize(chunk, size).pow(p).sum(dim=1)
                          for chunk in x.split(_ATTENTION_CHUNK_CHANNELS, dim=1))
    attention = (powered_sum / x.shape[1]).flatten(1)
    # F.normalize clamps the norm, so an all-zero map gives zeros, never NaN.
    return F.normalize(attention, p=2, dim=1)


def _upsampled_power_sum(x: Tensor, p: int, size: tuple[int, ...]) -> Tensor:
    """sum over channels of resize(x, size) ** p, without resizing the channels along the last axis.

    Linear interpolation (align_corners=False) makes each output along the last axis
    (1 - t) * a + t * b of two neighbouring inputs a, b with position-only weights, so by the
    binomial theorem sum_c(...)**p = sum_k C(p, k) (1 - t)**(p - k) t**k M_k with the channel
    moments M_k = sum_c a**(p - k) b**k, taken once per neighbour pair: the channel sum runs at
    the input's width, not the output's (UFD upsamples thousands of teacher channels from a
    few voxels to the student's full resolution). Exact up to float rounding.
    """
    width, in_width = size[-1], x.shape[-1]
    # PyTorch's source coordinate for linear, align_corners=False resizing, clamped at 0
    source = ((torch.arange(width, device=x.device, dtype=torch.float64) + 0.5) * (in_width / width) - 0.5).clamp(min=0)
    left = source.floor().long().clamp(max=in_width - 1)
    t = (source - left).to(x.dtype)
    moments = [0] * (p + 1)
    for chunk in x.split(_ATTENTION_CHUNK_CHANNELS, dim=1):
        a = resize(chunk, (*size[:-1], in_width))  # every axis but the last (identity along it)
        b = torch.cat([a[..., 1:], a[..., -1:]], dim=-1)  # right neighbour; the last input pairs with itself
        powers = [None, torch.stack([a, b])]  # powers[j] = (a**j, b**j), by multiplication (cheaper than pow)
        for _ in range(p - 1):
            powers.append(powers[-1] * powers[1])
        moments[0] = moments[0] + powers[p][0].sum(dim=1)
        moments[p] = moments[p] + powers[p][1].sum(dim=1)
        for k in range(1, p):
            moments[k] = moments[k] + (powers[p - k][0] * powers[k][1]).sum(dim=1)
    return sum(math.comb(p, k) * (1 - t).pow(p - k) * t.pow(k) * moments[k][..., left] for k in range(p + 1))


def attention_transfer(student: Tensor, target_attention: Tensor, p: float = 4.0,
                       target_size: Sequence[int] | None = None) -> Tensor:
    """AT: batch mean of the summed squared difference of attention maps.

    The student map is resized to the target's spatial size before its attention is
    taken; `target_attention` is an attention map already (see `attention_map`).
    """
    student_attention = attention_map(resize(student.float(), target_size) if target_size else student.float(), p)
    return (student_attention - target_attention).pow(2).sum(dim=1).mean()


def softmax_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """T**2 * KL(softmax(t/T) || softmax(s/T)) over the class channel, averaged over voxels."""
    student_log_probs = F.log_softmax(student_logits.float() / temperature, dim=1)
    teacher_log_probs = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    kl_per_voxel = (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(dim=1)
    return temperature ** 2 * kl_per_voxel.mean()


def bernoulli_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Per-region Bernoulli KL for sigmoid (region) heads, summed over regions, averaged over voxels."""
    s = student_logits.float() / temperature
    t = teacher_logits.float() / temperature
    # log-sigmoid forms stay finite for saturated logits, where log(sigmoid) would not.
    t_pos, t_neg = F.logsigmoid(t), F.logsigmoid(-t)
    s_pos, s_neg = F.logsigmoid(s), F.logsigmoid(-s)
    kl_per_voxel = (t_pos.exp() * (t_pos - s_pos) + t_neg.exp() * (t_neg - s_neg)).sum(dim=1)
    return temperature ** 2 * kl_per_voxel.mean()


def prediction_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float, regions: bool) -> Tensor:
    """KL_T between segmentation logits: softmax KL for labels, Bernoulli KL for regions."""
    kl = bernoulli_kl if regions else softmax_kl
    return kl(student_logits, teacher_logits, temperature)


def region_fractions(masks: Tensor, size: Sequence[int]) -> Tensor:
    """Masks (B, K, *spatial) resized to `size` by area averaging: each output voxel holds the
    fraction of it that each mask covers, so downsampling a label mask by 32 never aliases."""
    size = tuple(int(s) for s in size)
    return masks if spatial_size(masks) == size else F.interpolate(masks.float(), size=size, mode="area")


def masked_means(features: Tensor, masks: Tensor, eps: float = 1e-6) -> Tensor:
    """Mean feature vector of each mask: features (B, C, *spatial), masks (B, K, *spatial) of the
    same spatial size -> (B, K, C). An empty mask gives the zero vector, never NaN."""
    flat_masks = masks.float().flatten(2)
    sums = torch.einsum("bkp,bcp->bkc", flat_masks, features.float().flatten(2))
    return sums / (flat_masks.sum(dim=2, keepdim=True) + eps)
