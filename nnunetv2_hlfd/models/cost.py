"""Model cost: parameters and multiply-adds per patch, counted by torch's own flop counter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


def count_macs(network: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-adds of one forward pass on a tensor of `input_shape` (B, C, *spatial).

    The network must live on the meta device: shapes propagate, nothing is computed, so
    a 3d_fullres patch is counted in well under a second on any machine.
    """
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        network(torch.empty(tuple(input_shape), device="meta"))
    return counter.get_total_flops() // 2  # the counter reports 2 flops per multiply-add


@dataclass(frozen=True)
class ModelCost:
    parameters: int
    macs_per_patch: int


def model_cost(build: Callable[[], nn.Module], input_shape: Sequence[int]) -> ModelCost:
    """Cost of the network that `build` constructs, built on the meta device (no memory used)."""
    with torch.device("meta"):
        network = build()
    return ModelCost(count_parameters(network), count_macs(network, input_shape))


def cost_ratio_line(student: ModelCost, teacher: ModelCost) -> str:
    return (
        f"Student / teacher cost: parameters {student.parameters:,} / {teacher.parameters:,} "
        f"= {student.parameters / teacher.parameters:.1%}; multiply-adds per patch "
        f"{student.macs_per_patch:,} / {teacher.macs_per_patch:,} "
        f"= {student.macs_per_patch / teacher.macs_per_patch:.1%}"
    )
