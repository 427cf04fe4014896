"""The one distillation engine: builds a method's terms and computes them each step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist
from torch import Tensor, nn

from nnunetv2_hlfd.distillation.config import DistillationConfig, DistillationConfigError
from nnunetv2_hlfd.distillation.maps import DistillationGeometry, UNetMaps
from nnunetv2_hlfd.distillation.terms import TERMS


@dataclass
class DistillationLoss:
    """One step's distillation loss."""

    total: Tensor | float  # the weighted sum of the finite terms (0 when there are none)
    values: dict[str, Tensor]  # every term's unweighted value, finite or not
    non_finite: list[str]  # the terms left out of `total` because their value was not finite


def check_method(config: DistillationConfig) -> None:
    """Refuses a declaration that cannot run: bad schedule or average settings, unknown terms, and settings a
    term does not declare (a skipped term's too: a slip is refused on any network)."""
    problems = config.setting_problems()
    problems += [
        f"{name!r} is not a distillation term; the registered terms are {sorted(TERMS)}."
        for name in config.weights
        if name not in TERMS
    ]
    if problems:
        raise DistillationConfigError(
            [f"{problem} Correct it in the trainer's `distillation`." for problem in problems],
            "The trainer's `distillation` declaration is refused:",
        )
    for name in config.weights:
        TERMS[name].check_options(config)


class DistillationEngine(nn.Module):
    """Holds the applicable terms (and so their adapters) of one method.

    Terms a network is too shallow for (or on which a term is identically 0) are left out and reported
    once through `log`. Each step calls `loss` once; `teacher_reads` says which teacher maps
    (maps.teacher_maps) it needs.
    """

    def __init__(self, config: DistillationConfig, geometry: DistillationGeometry, log: Callable[[str], None] = print):
        super().__init__()
        self.config = config
        self.geometry = geometry
        self.terms = nn.ModuleDict()
        self.weights: dict[str, float] = {}
        check_method(config)
        for name, weight in config.weights.items():
            reason = TERMS[name].skip_reason(geometry, config)
            if reason:
                log(f"Distillation term {name} skipped: {reason}.")
                continue
            self.terms[name] = TERMS[name](geometry, config)
            self.weights[name] = weight
        # The teacher maps any term reads (maps.READS_*): the teacher skips its decoder when none reads outputs.
        self.teacher_reads: frozenset[str] = frozenset().union(*(term.teacher_reads for term in self.terms.values()))

    @property
    def term_names(self) -> list[str]:
        return list(self.terms.keys())

    def loss(
        self, student: UNetMaps, teacher: UNetMaps, target: Tensor | None = None, scale: float = 1.0
    ) -> DistillationLoss:
        """The step's distillation loss from the student's and the teacher's maps and nnU-Net's
        full-resolution target, every weight times `scale` (the weight schedule's factor at this epoch):
        a non-finite term is left out of the total (so it can never write NaN into the weights) and named."""
        values = self(student, teacher, target)
        finite_values, non_finite = self.finite_only(values)
        return DistillationLoss(scale * self.weighted_sum(finite_values), values, non_finite)

    def forward(self, student: UNetMaps, teacher: UNetMaps, target: Tensor | None = None) -> dict[str, Tensor]:
        """Unweighted value of every term, in float32 whatever autocast the step runs in."""
        # Detached here, so no term can ever send a gradient into the teacher.
        teacher = UNetMaps([m.detach() for m in teacher.encoder], [m.detach() for m in teacher.outputs])
        with torch.autocast(device_type=student.outputs[0].device.type, enabled=False):
            return {name: term(student, teacher, target) for name, term in self.terms.items()}

    def weighted_sum(self, values: dict[str, Tensor]) -> Tensor | float:
        return sum(self.weights[name] * value for name, value in values.items())

    @staticmethod
    def finite_only(values: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
        """The finite terms, and the names of those that were not. One host sync for all terms."""
        if not values:
            return values, []
        finite = torch.isfinite(torch.stack([v.detach() for v in values.values()])).tolist()
        kept = {name: v for (name, v), ok in zip(values.items(), finite) if ok}
        return kept, [name for name, ok in zip(values, finite) if not ok]

    def broadcast_from_first_rank(self) -> None:
        """Every rank takes rank 0's adapters: DDP gives all ranks rank 0's student, but the adapters
        live outside it and each rank initialised its own at random (nnU-Net seeds nothing)."""
        for tensor in [*self.parameters(), *self.buffers()]:
            dist.broadcast(tensor.data, src=0)

    def average_gradients_across_ranks(self) -> None:
        """DDP averages the student's gradients; the adapters live outside it and get the same here,
        so every rank's adapters stay identical."""
        world_size = dist.get_world_size()
        for parameter in self.parameters():
            if parameter.grad is not None:
                dist.all_reduce(parameter.grad)
                parameter.grad /= world_size
