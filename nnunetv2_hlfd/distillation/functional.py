"""The tensor operations every distillation term is built from, written once for 2D and 3D.

Each function takes maps shaped (B, C, *spatial) and works for any spatial rank; the
interpolation mode follows from the rank, never from a 2D/3D branch in the caller.
"""
from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

_INTERPOLATION_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}
# Resizes up to this many multiply-adds per voxel run as matrix products (see resize). Measured on the
# CPU against F.interpolate: forward alone, 80 were 1.3x and 32 8x faster, 160-384 up to 3x slower;
# forward and backward, 32-192 were 1.2-6x faster, 384 1.4x slower.
_SEPARABLE_RESIZE_MAX_COST = {"forward": 96, "backward": 256}

# Channels resized at a time when an attention map is taken of an upsampled stack:
# bounds the memory of resizing hundreds of teacher channels to full resolution.
_ATTENTION_CHUNK_CHANNELS = 32
# Cell moments held at a time by upsampled_power_sum (channels are chunked to fit): bounds its
# memory, and this size was fastest on the CPU from 32 to 2000 cells.
_MOMENT_CHUNK_VALUES = 2 ** 20


def spatial_size(x: Tensor) -> tuple[int, ...]:
    return tuple(x.shape[2:])


def resize(x: Tensor, size: Sequence[int]) -> Tensor:
    """(Bi|tri)linear resize with align_corners=False, chosen by the spatial rank.

    Where it takes few multiply-adds per voxel (from coarse maps, or down to coarse maps) the
    resize is one matrix product per axis with PyTorch's own interpolation weights: the same
    values, and on the CPU 3-16x faster forward and backward than F.interpolate for the coarse
    heads and stages the terms resize to and from full resolution.
    """
    size = tuple(int(s) for s in size)
    if spatial_size(x) == size:
        return x
    backward_too = x.requires_grad and torch.is_grad_enabled()  # F.interpolate's backward is the slow part
    max_cost = _SEPARABLE_RESIZE_MAX_COST["backward" if backward_too else "forward"]
    if _separable_resize_cost(spatial_size(x), size) <= max_cost:
        return _separable_resize(x, size)
    return F.interpolate(x, size=size, mode=_INTERPOLATION_MODES[x.ndim - 2], align_corners=False)


def _separable_resize_cost(in_size: tuple[int, ...], size: tuple[int, ...]) -> float:
    """Multiply-adds of _separable_resize per voxel of the larger of input and output."""
    current, multiply_adds = list(in_size), 0
    for d in reversed(range(len(size))):
        if current[d] != size[d]:
            current[d] = size[d]
            multiply_adds += math.prod(current) * in_size[d]  # every value of this pass: an in_size[d]-term sum
    return multiply_adds / max(math.prod(in_size), math.prod(size))


def _separable_resize(x: Tensor, size: tuple[int, ...]) -> Tensor:
    """Linear resizing is separable: each axis in turn, last first, as a matrix product on a
    contiguous view (no transposes)."""
    lead, current = x.shape[:2], list(spatial_size(x))
    y = x.reshape(lead.numel(), *current)
    for d in reversed(range(len(size))):
        if current[d] == size[d]:
            continue
        weights = _interpolation_matrix(current[d], size[d], x.dtype, x.device)
        before = math.prod(current[:d])
        if d == len(size) - 1:
            y = y.reshape(-1, current[d]) @ weights.T
        else:
            y = weights @ y.reshape(lead.numel() * before, current[d], -1)
        current[d] = size[d]
    return y.reshape(*lead, *size)


@functools.lru_cache(maxsize=256)
def _interpolation_matrix(in_size: int, out_size: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(out, in): 1D linear resizing (align_corners=False) as a matrix, taken from F.interpolate itself."""
    basis = torch.eye(in_size, dtype=torch.float64).unsqueeze(1)
    columns = F.interpolate(basis, size=out_size, mode="linear", align_corners=False)[:, 0]
    return columns.T.contiguous().to(device=device, dtype=dtype)


def smallest_spatial_size(maps: Sequence[Tensor]) -> tuple[int, ...]:
    return min((spatial_size(m) for m in maps), key=lambda s: torch.Size(s).numel())


def attention_map(x: Tensor, p: float = 4.0, size: Sequence[int] | None = None) -> Tensor:
    """a(x): channel mean of x**p, flattened over positions, L2-normalised per sample.

    With `size`, x is first resized to it. An upsampled stack is never materialised: for an
    integer p its channel sum comes from channel moments at x's resolution (exact); otherwise
    x is resized a few channels at a time (resizing acts per channel, so the result is the same).
    """
    x = x.float()
    if size is None or spatial_size(x) == tuple(size):
        powered_sum = _channel_power_sum(x, p)
    elif float(p).is_integer() and p >= 1 and math.prod(size) > math.prod(spatial_size(x)):
        powered_sum = upsampled_power_sum(x, int(p), tuple(int(s) for s in size))
    else:
        powered_sum = sum(resize(chunk, size).pow(p).sum(dim=1)
                          for chunk in x.split(_ATTENTION_CHUNK_CHANNELS, dim=1))
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
    powered_mean = _channel_power_sum(x, p).unsqueeze(1) / x.shape[1]
    return F.normalize(area_resize(powered_mean, size).flatten(1), p=2, dim=1)


def _channel_power_sum(x: Tensor, p: float) -> Tensor:
    return _ChannelPowerSum.apply(x, int(p)) if float(p).is_integer() and p >= 2 else x.pow(p).sum(dim=1)


class _ChannelPowerSum(torch.autograd.Function):
    """sum over channels of x**p for an integer p >= 2, its powers taken by multiplication and its
    gradient p x**(p-1) g from the saved x**(p-1): 3.5x faster forward and backward on the CPU than
    autograd through pow, for the student's full-resolution E0 that UFD reads."""

    @staticmethod
    def forward(ctx, x, p):
        below = x  # x**(p-1)
        for _ in range(p - 2):
            below = below * x
        ctx.save_for_backward(below)
        ctx.p = p
        return (below * x).sum(dim=1)

    @staticmethod
    def backward(ctx, grad_output):
        below, = ctx.saved_tensors
        return below * (grad_output.unsqueeze(1) * ctx.p), None


def upsampled_power_sum(x: Tensor, p: int, size: tuple[int, ...]) -> Tensor:
    """sum over channels of resize(x, size) ** p, (B, *size), without resizing any channel.

    Linear resizing (align_corners=False) makes each output voxel a blend of the 2^D corners of
    one input cell, sum_e w_e x_e, whose weights w_e = prod_d (1 - t_d or t_d) depend on the
    position only. Its p-th power, summed over channels, is therefore a polynomial of degree p
    in each t_d whose coefficients are channel moments of the corner values: one small matrix
    product per input cell. The channel sum runs at x's resolution and each output voxel costs
    (p + 1) multiply-adds per axis, whatever the channel count (UFD upsamples thousands of
    teacher channels from a few voxels to the student's full resolution). Exact up to rounding.
    """
    dims, in_size = x.ndim - 2, spatial_size(x)
    corner_shape = (2,) * dims
    low, high = (p + 1) // 2, p // 2  # x**p = x**low * x**high, so sum_c x**p is a Gram matrix of the two
    gram = 0
    chunk_channels = max(32, _MOMENT_CHUNK_VALUES // (x.shape[0] * math.prod(in_size) * (low + 1) ** dims))
    # Channels last, so each cell's coefficients are rows of contiguous channels for the Gram product.
    for chunk in x.movedim(1, -1).split(chunk_channels, dim=-1):
        corners = _cell_corners(chunk)
        low_power, low_shape = _polynomial_power(corners, corner_shape, low)
        high_power, high_shape = (low_power, low_shape) if high == low else \
            _polynomial_power(corners, corner_shape, high)
        gram = gram + low_power @ high_power.transpose(-1, -2)
    pairs = _product_pairs(low_shape, high_shape, symmetric=False)
    bins = torch.tensor(pairs.bins, device=x.device)
    coefficients = gram.new_zeros(*gram.shape[:-2], math.prod(pairs.shape))
    coefficients = coefficients.index_add_(-1, bins, gram.flatten(-2)).view(*gram.shape[:-2], *pairs.shape)
    return _evaluate_cell_polynomials(coefficients, size)


def _evaluate_cell_polynomials(coefficients: Tensor, size: tuple[int, ...]) -> Tensor:
    """(B, *in, *(p + 1,) * D) cell coefficients -> (B, *size) values, one axis at a time: each axis
    is one matrix product of the (cell, degree) pairs with the monomials of every output position."""
    dims = len(size)
    in_size, degree = coefficients.shape[1:1 + dims], coefficients.shape[-1]
    # (B, in_0, n_0, in_1, n_1, ..): each axis' cell and degree side by side, contracted together.
    values = coefficients.permute(0, *(a for d in range(dims) for a in (1 + d, 1 + dims + d)))
    done = coefficients.shape[0]  # batch and the output axes already evaluated, in front
    for d in range(dims):
        evaluation = _linear_resize_evaluation(in_size[d], size[d], degree - 1, coefficients.device)
        if d == dims - 1:
            values = values.reshape(done, -1) @ evaluation.T
        else:
            values = evaluation @ values.reshape(done, in_size[d] * degree, -1)
        done *= size[d]
    return values.reshape(-1, *size)


def _cell_corners(x: Tensor) -> Tensor:
    """x channels last (B, *spatial, C) -> (B, *spatial, 2^D, C): at every position, the values at
    the 2^D corners of the cell starting there (C order of their (e_0, .., e_D-1) offsets), the far
    corner along an axis clamped at the border as linear resizing clamps it."""
    corners = x.unsqueeze(-2)
    for axis in reversed(range(1, x.ndim - 1)):  # the first spatial axis ends up the most significant
        n = corners.shape[axis]
        far = torch.cat([corners.narrow(axis, 1, n - 1), corners.narrow(axis, n - 1, 1)], dim=axis)
        corners = torch.cat([corners, far], dim=-2)
    return corners


def _polynomial_power(corners: Tensor, shape: tuple[int, ...], power: int) -> tuple[Tensor, tuple[int, ...]]:
    """The `power` of the polynomials whose coefficients (C order over `shape`) stand on dim -2."""
    if power == 0:
        return corners.new_ones(*corners.shape[:-2], 1, corners.shape[-1]), (1,) * len(shape)
    result, result_shape = corners, shape
    for _ in range(power - 1):
        symmetric = result is corners  # squaring: each unordered pair once, counted twice
        pairs = _product_pairs(result_shape, shape, symmetric)
        product = corners.new_zeros(*corners.shape[:-2], math.prod(pairs.shape), corners.shape[-1])
        for i, j, bin_, count in zip(pairs.left, pairs.right, pairs.bins, pairs.counts):
            product[..., bin_, :].addcmul_(result[..., i, :], corners[..., j, :], value=count)
        result, result_shape = product, pairs.shape
    return result, result_shape


@dataclass(frozen=True)
class _ProductPairs:
    """Polynomial multiplication of coefficient arrays (a full convolution): the pairs of
    coefficients (flat C-order indices left, right), the coefficient each adds to, how often."""
    left: tuple[int, ...]
    right: tuple[int, ...]
    bins: tuple[int, ...]
    counts: tuple[int, ...]
    shape: tuple[int, ...]


@functools.lru_cache(maxsize=64)
def _product_pairs(shape_a: tuple[int, ...], shape_b: tuple[int, ...], symmetric: bool) -> _ProductPairs:
    shape = tuple(a + b - 1 for a, b in zip(shape_a, shape_b))
    pairs = [(i, j, int(np.ravel_multi_index(tuple(a + b for a, b in zip(index_a, index_b)), shape)),
              1 if i == j or not symmetric else 2)
             for i, index_a in enumerate(itertools.product(*map(range, shape_a)))
             for j, index_b in enumerate(itertools.product(*map(range, shape_b)))
             if not symmetric or i <= j]
    return _ProductPairs(*zip(*pairs), shape)


@functools.lru_cache(maxsize=64)
def _linear_resize_evaluation(in_size: int, out_size: int, p: int, device: torch.device) -> Tensor:
    """(out, in * (p + 1)): for one axis of a linear resize, output q's row holds, at its cell (the
    left input, clamped as PyTorch clamps it), the monomials (1 - t)**(p - n) t**n, n = 0 .. p, of
    its position t in the cell; the binomial counts are in the coefficients already."""
    source = ((torch.arange(out_size, dtype=torch.float64) + 0.5) * (in_size / out_size) - 0.5).clamp(min=0)
    left = source.floor().clamp(max=in_size - 1)
    t = (source - left).unsqueeze(1)
    n = torch.arange(p + 1, dtype=torch.float64)
    evaluation = torch.zeros(out_size, in_size, p + 1, dtype=torch.float64)
    evaluation[torch.arange(out_size), left.long()] = (1 - t).pow(p - n) * t.pow(n)
    return evaluation.flatten(1).float().to(device)


def attention_transfer(student: Tensor, target_attention: Tensor, p: float = 4.0,
                       target_size: Sequence[int] | None = None) -> Tensor:
    """AT: batch mean of the summed squared difference of attention maps.

    The student map is resized to the target's spatial size before its attention is
    taken; `target_attention` is an attention map already (see `attention_map`).
    """
    student_attention = attention_map(resize(student.float(), target_size) if target_size else student.float(), p)
    return attention_distance(student_attention, target_attention)


def attention_distance(student_attention: Tensor, target_attention: Tensor) -> Tensor:
    """Batch mean of the summed squared difference of two attention maps (B, positions)."""
    return (student_attention - target_attention).pow(2).sum(dim=1).mean()


def softmax_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """T**2 * KL(softmax(t/T) || softmax(s/T)) over the class channel, averaged over voxels."""
    return kl_to_teacher([student_logits], teacher_logits, temperature, regions=False)


def bernoulli_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Per-region Bernoulli KL for sigmoid (region) heads, summed over regions, averaged over voxels."""
    return kl_to_teacher([student_logits], teacher_logits, temperature, regions=True)


def prediction_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float, regions: bool) -> Tensor:
    """KL_T between segmentation logits: softmax KL for labels, Bernoulli KL for regions."""
    return kl_to_teacher([student_logits], teacher_logits, temperature, regions)


def kl_to_teacher(students_logits: Sequence[Tensor], teacher_logits: Tensor, temperature: float,
                  regions: bool) -> Tensor:
    """The sum over students of KL_T(student, teacher), each of the teacher's size; the teacher's
    distribution is taken once for all of them (IPD compares several student heads with one output).

    Labels: T**2 * KL(softmax(t/T) || softmax(s/T)) over the class channel. Regions (sigmoid
    heads): the Bernoulli KL of each region, summed over regions. Both averaged over voxels.
    """
    teacher_log_probs = _log_distribution(teacher_logits.float() / temperature, regions)
    teacher_probs = tuple(log_probs.exp() for log_probs in teacher_log_probs)
    # A teacher that takes no gradient (every term's target) lets the gradient take its closed form.
    kl = _kl_per_voxel_mean if teacher_logits.requires_grad else _FixedTeacherKL.apply
    total = sum(kl(student_logits.float(), teacher_probs, teacher_log_probs, temperature, regions)
                for student_logits in students_logits)
    return temperature ** 2 * total


def _kl_per_voxel_mean(student_logits: Tensor, teacher_probs: tuple[Tensor, ...],
                       teacher_log_probs: tuple[Tensor, ...], temperature: float, regions: bool) -> Tensor:
    """KL(teacher || student) summed over classes (and outcomes), averaged over voxels."""
    return _kl_mean(_log_distribution(student_logits / temperature, regions), teacher_probs, teacher_log_probs)


def _kl_mean(student_log_probs: tuple[Tensor, ...], teacher_probs: tuple[Tensor, ...],
             teacher_log_probs: tuple[Tensor, ...]) -> Tensor:
    kl_per_outcome = [p * (t - s) for p, t, s in zip(teacher_probs, teacher_log_probs, student_log_probs)]
    kl_per_voxel = kl_per_outcome[0] if len(kl_per_outcome) == 1 else kl_per_outcome[0] + kl_per_outcome[1]
    return kl_per_voxel.sum(dim=1).mean()


class _FixedTeacherKL(torch.autograd.Function):
    """_kl_per_voxel_mean against a teacher that takes no gradient, with the gradient in closed form:
    (q - p) / (T * voxels) for the student's and the teacher's probabilities q and p, softmax and
    sigmoid alike; a third of the passes autograd makes through log_softmax, products and means."""

    @staticmethod
    def forward(ctx, student_logits, teacher_probs, teacher_log_probs, temperature, regions):
        student_log_probs = _log_distribution(student_logits / temperature, regions)
        ctx.save_for_backward(student_log_probs[0], teacher_probs[0])
        ctx.scale = temperature * student_logits[:, 0].numel()
        return _kl_mean(student_log_probs, teacher_probs, teacher_log_probs)

    @staticmethod
    def backward(ctx, grad_output):
        student_log_probs, teacher_probs = ctx.saved_tensors
        grad = (student_log_probs.exp() - teacher_probs).mul_(grad_output / ctx.scale)
        return grad, None, None, None, None


def _log_distribution(logits: Tensor, regions: bool) -> tuple[Tensor, ...]:
    """Log-probabilities of each outcome: of the classes (softmax) or, per region, of in and out."""
    if regions:
        # log-sigmoid forms stay finite for saturated logits, where log(sigmoid) would not.
        return F.logsigmoid(logits), F.logsigmoid(-logits)
    return (F.log_softmax(logits, dim=1),)


def region_fractions(masks: Tensor, size: Sequence[int]) -> Tensor:
    """Masks (B, K, *spatial) resized to `size` by area averaging: each output voxel holds the
    fraction of it that each mask covers, so downsampling a label mask by 32 never aliases."""
    return area_resize(masks.float(), size)


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
