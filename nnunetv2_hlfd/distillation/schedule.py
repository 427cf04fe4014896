"""The distillation weight's schedule: the factor on every term's weight at an epoch of nnU-Net's training.

The schedules of DPRD-3D-MedSeg (ClinicaAlpha; nnunetv2/training/distillation/utils.py,
`get_kd_weight_scheduler`), as functions of nnU-Net's `current_epoch` and `num_epochs` alone, so a run
resumed with --c continues on the same curve:

- "constant": 1 at every epoch (HLFD as published).
- "warmup": linear from 0 at epoch 0 to 1 at epoch `warmup_epochs`, 1 after it.
- "cosine": the linear warm-up if `warmup_epochs` > 0, then 0.5 (1 + cos(pi t)) over the remaining
  epochs, t going from 0 to 1: from full weight down to near 0 at the last epoch (the cosine annealing
  of Loshchilov & Hutter 2017, SGDR, applied to the distillation weight instead of the learning rate).

Leaf module (stdlib only): config.py declares a method's schedule with these names.
"""

from __future__ import annotations

import math

WEIGHT_SCHEDULES = ("constant", "warmup", "cosine")


def weight_factor(schedule: str, warmup_epochs: int, epoch: int, num_epochs: int) -> float:
    """The factor on the distillation terms' weights at `epoch` (0-based) of a `num_epochs` training."""
    if schedule not in WEIGHT_SCHEDULES:
        raise ValueError(f"Unknown distillation weight schedule {schedule!r}; the schedules are {WEIGHT_SCHEDULES}.")
    if schedule == "constant":
        return 1.0
    if epoch < warmup_epochs:
        return epoch / warmup_epochs
    if schedule == "warmup":
        return 1.0
    decay_epochs = max(num_epochs - warmup_epochs, 1)
    progress = min((epoch - warmup_epochs) / decay_epochs, 1.0)
    return 0.5 * (1 + math.cos(math.pi * progress))
