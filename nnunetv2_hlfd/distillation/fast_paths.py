"""CPU shortcuts for the definitions in functional.py: each equals its definition up to float rounding.

functional.py states each operation as the paper does and picks one of these in a visible line, on the
device type they were measured faster on only (`measured_faster_on`: the CPU); any other device runs the
definition. tests/distillation/test_fast_paths.py checks every one against its definition, values and
gradients; docs/BENCHMARKS.md has what each saves.

- `separable_resize`: linear resizing as one matrix product per axis (for `functional.resize`).
- `channel_power_sum`: sum over channels of x**p by multiplication, gradient in closed form.
- `upsampled_power_sum`: sum over channels of resize(x)**p without resizing a channel.
- `KLToFixedTeacher`: the KL's gradient in closed form when the teacher takes none.
- `pointwise`: a 1x1 convolution as one batched matrix product.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Multiply-adds per voxel up to which separable_resize beats F.interpolate on the CPU (docs/BENCHMARKS.md).
_SEPARABLE_RESIZE_MAX_COST = {"forward": 96, "backward": 256}
# Cell moments held at a time by upsampled_power_sum (channels are chunked to fit): bounds its memory.
_MOMENT_CHUNK_VALUES = 2**20


# The device types the shortcuts were timed faster on (docs/BENCHMARKS.md); elsewhere they are untimed.
_MEASURED_FASTER_ON = frozenset({"cpu"})


def measured_faster_on(device: torch.device) -> bool:
    """Whether the shortcuts are used on `device`: on the device types they were measured faster on only."""
    return device.type in _MEASURED_FASTER_ON


def _spatial_size(x: Tensor) -> tuple[int, ...]:
    return tuple(x.shape[2:])


# ---- resize ------------------------------------------------------------------------------
def separable_resize_is_faster(in_size: tuple[int, ...], size: tuple[int, ...], with_backward: bool) -> bool:
    """Whether `separable_resize` takes few enough multiply-adds per voxel to beat F.interpolate
    (whose backward is the slow part, hence the larger bound when a gradient will flow)."""
    return (
        _separable_resize_cost(in_size, size) <= _SEPARABLE_RESIZE_MAX_COST["backward" if with_backward else "forward"]
    )


def _separable_resize_cost(in_size: tuple[int, ...], size: tuple[int, ...]) -> float:
    """Multiply-adds of separable_resize per voxel of the larger of input and output."""
    current, multiply_adds = list(in_size), 0
    for d in reversed(range(len(size))):
        if current[d] != size[d]:
            current[d] = size[d]
            multiply_adds += math.prod(current) * in_size[d]  # every value of this pass: an in_size[d]-term sum
    return multiply_adds / max(math.prod(in_size), math.prod(size))


def separable_resize(x: Tensor, size: tuple[int, ...]) -> Tensor:
    """= F.interpolate(x, size, (bi|tri)linear, align_corners=False): linear resizing is separable,
    so each axis in turn, last first, is a matrix product with PyTorch's own interpolation weights
    on a contiguous view (no transposes)."""
    lead, current = x.shape[:2], list(_spatial_size(x))
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


# ---- channel power sums ------------------------------------------------------------------
def channel_power_sum(x: Tensor, p: int) -> Tensor:
    """= x.pow(p).sum(dim=1) for an integer p >= 2."""
    return _ChannelPowerSum.apply(x, p)


class _ChannelPowerSum(torch.autograd.Function):
    """Powers by multiplication, and the gradient p x**(p-1) g from the saved x**(p-1): fewer passes
    than autograd through pow, for the student's full-resolution E0 that UFD reads."""

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
        (below,) = ctx.saved_tensors
        return below * (grad_output.unsqueeze(1) * ctx.p), None


def upsampled_power_sum(x: Tensor, p: int, size: tuple[int, ...]) -> Tensor:
    """= resize(x, size).pow(p).sum(dim=1), (B, *size), for an integer p >= 1, without resizing any channel.

    Linear resizing (align_corners=False) makes each output voxel a blend of the 2^D corners of
    one input cell, sum_e w_e x_e, whose weights w_e = prod_d (1 - t_d or t_d) depend on the
    position only. Its p-th power, summed over channels, is therefore a polynomial of degree p
    in each t_d whose coefficients are channel moments of the corner values: one small matrix
    product per input cell. The channel sum runs at x's resolution and each output voxel costs
    (p + 1) multiply-adds per axis, whatever the channel count (UFD upsamples thousands of
    teacher channels from a few voxels to the student's full resolution). Exact up to rounding.
    """
    dims, in_size = x.ndim - 2, _spatial_size(x)
    corner_shape = (2,) * dims
    low, high = (p + 1) // 2, p // 2  # x**p = x**low * x**high, so sum_c x**p is a Gram matrix of the two
    gram = 0
    chunk_channels = max(32, _MOMENT_CHUNK_VALUES // (x.shape[0] * math.prod(in_size) * (low + 1) ** dims))
    # Channels last, so each cell's coefficients are rows of contiguous channels for the Gram product.
    for chunk in x.movedim(1, -1).split(chunk_channels, dim=-1):
        corners = _cell_corners(chunk)
        low_power, low_shape = _polynomial_power(corners, corner_shape, low)
        high_power, high_shape = (
            (low_power, low_shape) if high == low else _polynomial_power(corners, corner_shape, high)
        )
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
    in_size, degree = coefficients.shape[1 : 1 + dims], coefficients.shape[-1]
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
    pairs = [
        (
            i,
            j,
            int(np.ravel_multi_index(tuple(a + b for a, b in zip(index_a, index_b)), shape)),
            1 if i == j or not symmetric else 2,
        )
        for i, index_a in enumerate(itertools.product(*map(range, shape_a)))
        for j, index_b in enumerate(itertools.product(*map(range, shape_b)))
        if not symmetric or i <= j
    ]
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


# ---- KL ----------------------------------------------------------------------------------
class KLToFixedTeacher(torch.autograd.Function):
    """= the voxel-mean KL(teacher || student) of functional.kl_divergence, for a teacher that takes
    no gradient: the value is the definition's (computed there, passed in), the gradient w.r.t. the
    student's logits its closed form (q - p) / (T * voxels) for the student's and the teacher's
    probabilities q and p, softmax and sigmoid alike; a third of the passes autograd makes through
    log_softmax, products and means.

    apply(student_logits, kl_value, student_log_probs, teacher_probs, temperature): the log-probabilities
    and probabilities are those of the first outcome (the classes, or "in" of each region).
    """

    @staticmethod
    def forward(ctx, student_logits, kl_value, student_log_probs, teacher_probs, temperature):
        ctx.save_for_backward(student_log_probs, teacher_probs)
        ctx.scale = temperature * student_logits[:, 0].numel()
        return kl_value.clone()

    @staticmethod
    def backward(ctx, grad_output):
        student_log_probs, teacher_probs = ctx.saved_tensors
        grad = (student_log_probs.exp() - teacher_probs).mul_(grad_output / ctx.scale)
        return grad, None, None, None, None


# ---- 1x1 convolution ---------------------------------------------------------------------
def pointwise(conv: nn.Module, x: Tensor) -> Tensor:
    """= conv(x) for a 1x1 convolution with bias, as one batched matrix product over positions
    (mkldnn's convolution is slow for a projection to a few classes)."""
    weight = conv.weight.flatten(1)
    y = torch.bmm(weight.expand(x.shape[0], -1, -1), x.flatten(2))
    return (y + conv.bias.view(1, -1, 1)).view(x.shape[0], weight.shape[0], *_spatial_size(x))
