"""How much each loss steers the student: the gradient each weighted term puts on the student's weights.

A term's value says little about its effect (a KL times T^2 can be large and still move nothing); its
gradient on the student's weights, next to the segmentation loss's, says how much of each step it
decides and whether it pulls with the labels (cosine > 0) or against them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nnunetv2_hlfd.utilities.environment import env_flag

GRADIENT_SHARE_ENV = "HLFD_GRADIENT_SHARE"  # yes: measure on the first step of every epoch (one backward per term)
SEGMENTATION = "segmentation"


@dataclass(frozen=True)
class GradientShare:
    norm: float  # L2 norm of the loss's gradient over the student's weights
    cosine: float  # cosine between that gradient and the segmentation loss's (1 for the segmentation loss)


def measure_gradients_each_epoch() -> bool:
    return env_flag(GRADIENT_SHARE_ENV)


def gradient_shares(losses: dict[str, Tensor], parameters: list[Tensor]) -> dict[str, GradientShare]:
    """Each loss's gradient norm on `parameters` and its cosine with the gradient of losses[SEGMENTATION].

    The graph is kept (retain_graph) so that the step's own backward can follow; nothing is accumulated
    into .grad.
    """
    flat = {}
    for name, loss in losses.items():
        grads = (
            torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
            if loss.requires_grad
            else [None] * len(parameters)  # a term that does not depend on the student (e.g. skipped as 0)
        )
        flat[name] = torch.cat(
            [(g if g is not None else torch.zeros_like(p)).reshape(-1).float() for g, p in zip(grads, parameters)]
        )
    reference = flat[SEGMENTATION]
    shares = {}
    for name, g in flat.items():
        denominator = g.norm() * reference.norm()
        cosine = (g @ reference / denominator).item() if denominator > 0 else float("nan")
        shares[name] = GradientShare(g.norm().item(), cosine)
    return shares


def describe(shares: dict[str, GradientShare]) -> str:
    """One log line: the segmentation gradient's norm, then each term's norm as a multiple of it and its cosine."""
    segmentation = shares[SEGMENTATION].norm
    parts = [f"{SEGMENTATION} {segmentation:.3g}"]
    for name, share in shares.items():
        if name != SEGMENTATION:
            ratio = share.norm / segmentation if segmentation > 0 else float("inf")
            parts.append(f"{name} {share.norm:.3g} ({ratio:.2f}x, cos {share.cosine:+.2f})")
    return "; ".join(parts)
