"""The tensor operations every distillation term is built from, written once for 2D and 3D.

Each function takes maps shaped (B, C, *spatial) and works for any spatial rank; the
interpolation mode follows from the rank, never from a 2D/3D branch in the caller. Each is
written as its definition; where a CPU shortcut (fast_paths.py, equal to the definition) applies,
one marked line picks it, on the CPU only (fast_paths.measured_faster_on).
"""

from __future__ import annotations

import contextlib
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from nnunetv2_hlfd.distillation import fast_paths

_INTERPOLATION_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}
# Channels resized at a time when an attention map is taken of a resized stack:
# bounds the memory of resizing hundreds of teacher channels to full resolution.
_ATTENTION_CHUNK_CHANNELS = 32


def spatial_size(x: Tensor) -> tuple[int, ...]:
    return tuple(x.shape[2:])


def resize(x: Tensor, size: Sequence[int]) -> Tensor:
    """(Bi|tri)linear resize with align_corners=False, chosen by the spatial rank."""
    size = tuple(int(s) for s in size)
    if spatial_size(x) == size:
        return x
    with_backward = x.requires_grad and torch.is_grad_enabled()
    fast = fast_paths.measured_faster_on(x.device)
    if fast and fast_paths.separable_resize_is_faster(spatial_size(x), size, with_backward):  # coarse maps
        return fast_paths.separable_resize(x, size)
    return F.interpolate(x, size=size, mode=_INTERPOLATION_MODES[x.ndim - 2], align_corners=False)


def smallest_spatial_size(maps: Sequence[Tensor]) -> tuple[int, ...]:
    return min((spatial_size(m) for m in maps), key=lambda s: torch.Size(s).numel())


def channel_power_sum(x: Tensor, p: float) -> Tensor:
    """sum over channels of x**p: (B, C, *spatial) -> (B, *spatial)."""
    if fast_paths.measured_faster_on(x.device) and float(p).is_integer() and p >= 2:  # by multiplication
        return fast_paths.channel_power_sum(x, int(p))
    return x.pow(p).sum(dim=1)


def resized_channel_power_sum(x: Tensor, p: float, size: Sequence[int]) -> Tensor:
    """sum over channels of resize(x, size)**p, without ever holding the resized stack: resizing acts
    per channel, so x is resized a few channels at a time."""
    upsampling = math.prod(size) > math.prod(spatial_size(x))
    if fast_paths.measured_faster_on(x.device) and float(p).is_integer() and p >= 1 and upsampling:  # moments
        return fast_paths.upsampled_power_sum(x, int(p), tuple(int(s) for s in size))
    return sum(resize(chunk, size).pow(p).sum(dim=1) for chunk in x.split(_ATTENTION_CHUNK_CHANNELS, dim=1))


def attention_map(x: Tensor, p: float = 4.0, size: Sequence[int] | None = None) -> Tensor:
    """a(x): channel mean of x**p, flattened over positions, L2-normalised per sample.

    With `size`, x is first resized to it (never materialising the resized stack).
    """
    x = x.float()
    if size is None or spatial_size(x) == tuple(size):
        powered_sum = channel_power_sum(x, p)
    else:
        powered_sum = resized_channel_power_sum(x, p, size)
    attention = (powered_sum / x.shape[1]).flatten(1)
    # F.normalize clamps the norm, so an all-zero map gives zeros, never NaN.
    return F.normalize(attention, p=2, dim=1)


def area_attention_map(x: Tensor, p: float, size: Sequence[int]) -> Tensor:
    """a(x) taken at x's own resolution and area-averaged to `size`, then L2-normalised per sample.

    Every position of x contributes to (and takes gradient from) the coarse map, where resizing x
    (bi/trilinearly, without antialiasing) to a much smaller `size` first reads only the few
    positions next to each sample point.
    """
    x = x.float()
    powered_mean = channel_power_sum(x, p).unsqueeze(1) / x.shape[1]
    return F.normalize(area_resize(powered_mean, size).flatten(1), p=2, dim=1)


def attention_transfer(
    student: Tensor, target_attention: Tensor, p: float = 4.0, target_size: Sequence[int] | None = None
) -> Tensor:
    """AT: batch mean of the summed squared difference of attention maps.

    The student map is resized to the target's spatial size before its attention is
    taken; `target_attention` is an attention map already (see `attention_map`).
    """
    student_attention = attention_map(resize(student.float(), target_size) if target_size else student.float(), p)
    return attention_distance(student_attention, target_attention)


def attention_distance(student_attention: Tensor, target_attention: Tensor) -> Tensor:
    """Batch mean of the summed squared difference of two attention maps (B, positions)."""
    return (student_attention - target_attention).pow(2).sum(dim=1).mean()


def kl_divergence(
    student_logits: Tensor | Sequence[Tensor], teacher_logits: Tensor, temperature: float, regions: bool = False
) -> Tensor:
    """KL_T(teacher || student) between segmentation logits, T**2-scaled, averaged over voxels.

    Labels: T**2 * KL(softmax(t/T) || softmax(s/T)) over the class channel (dim 1). Regions
    (sigmoid heads): the Bernoulli KL of each region, summed over regions. A sequence of student
    logits, each of the teacher's size, gives the sum of their KLs; the teacher's distribution is
    taken once for all of them (IPD compares several student heads with one output).
    """
    students = [student_logits] if isinstance(student_logits, Tensor) else student_logits
    teacher_log_probs = _log_distribution(teacher_logits.float() / temperature, regions)
    teacher_probs = tuple(log_probs.exp() for log_probs in teacher_log_probs)
    # Every term's target is fixed: on the CPU the gradient then takes its closed form.
    closed_form = not teacher_logits.requires_grad and fast_paths.measured_faster_on(teacher_logits.device)
    total = sum(
        _voxel_mean_kl(logits.float(), teacher_probs, teacher_log_probs, temperature, regions, closed_form)
        for logits in students
    )
    return temperature**2 * total


def _voxel_mean_kl(
    student_logits: Tensor,
    teacher_probs: tuple[Tensor, ...],
    teacher_log_probs: tuple[Tensor, ...],
    temperature: float,
    regions: bool,
    closed_form: bool,
) -> Tensor:
    """KL(teacher || student) summed over classes (and outcomes), averaged over voxels; with `closed_form`
    (a teacher without gradient) the student's gradient is fast_paths.KLToFixedTeacher's."""
    with torch.no_grad() if closed_form else contextlib.nullcontext():
        student_log_probs = _log_distribution(student_logits / temperature, regions)
        kl_per_outcome = [p * (t - s) for p, t, s in zip(teacher_probs, teacher_log_probs, student_log_probs)]
        kl_per_voxel = kl_per_outcome[0] if len(kl_per_outcome) == 1 else kl_per_outcome[0] + kl_per_outcome[1]
        kl = kl_per_voxel.sum(dim=1).mean()
    if closed_form:
        return fast_paths.KLToFixedTeacher.apply(
            student_logits, kl, student_log_probs[0], teacher_probs[0], temperature
        )
    return kl


def _log_distribution(logits: Tensor, regions: bool) -> tuple[Tensor, ...]:
    """Log-probabilities of each outcome: of the classes (softmax) or, per region, of in and out."""
    if regions:
        # log-sigmoid forms stay finite for saturated logits, where log(sigmoid) would not.
        return F.logsigmoid(logits), F.logsigmoid(-logits)
    return (F.log_softmax(logits, dim=1),)


def area_resize(x: Tensor, size: Sequence[int]) -> Tensor:
    """x resized to `size` by area averaging (adaptive average pooling): each output voxel is the
    mean of the input voxels it covers, so every input voxel counts."""
    size = tuple(int(s) for s in size)
    return x if spatial_size(x) == size else F.interpolate(x, size=size, mode="area")


def masked_means(features: Tensor, masks: Tensor, eps: float = 1e-6) -> Tensor:
    """Mean feature vector of each mask: features (B, C, *spatial), masks (B, K, *spatial) of the
    same spatial size -> (B, K, C). An empty mask gives the zero vector, never NaN."""
    flat_masks = masks.float().flatten(2)
    sums = torch.einsum("bkp,bcp->bkc", flat_masks, features.float().flatten(2))
    return sums / (flat_masks.sum(dim=2, keepdim=True) + eps)
