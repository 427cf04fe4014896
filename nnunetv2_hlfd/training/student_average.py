"""The exponential moving average of the student's weights: Polyak averaging, as the Mean Teacher of
Tarvainen & Valpola 2017 keeps it (and DPRD-3D-MedSeg's trainer, nnunetv2/training/distillation/ema.py).

After each training step the average moves towards the student, avg <- decay * avg + (1 - decay) * student,
its first step taking the student as it is: torch's own AveragedModel with get_ema_multi_avg_fn. Buffers are
averaged with the weights (use_buffers), so a BatchNorm student's statistics belong to its averaged weights.
The trainer scores validation with the average and writes it as the checkpoint's `network_weights`, what
nnUNetv2_predict loads; the student's own weights travel beside it, so --c resumes both.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class StudentAverage:
    """The average of one network's weights, kept on the network's device."""

    def __init__(self, network: nn.Module, decay: float):
        self.decay = decay
        self.average = AveragedModel(network, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    def update(self, network: nn.Module) -> None:
        self.average.update_parameters(network)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights, keyed as the network's own."""
        return self.average.module.state_dict()

    @contextlib.contextmanager
    def weights_in(self, network: nn.Module):
        """Within the block the network holds the averaged weights; after it, its own again."""
        own = {name: value.clone() for name, value in network.state_dict().items()}
        network.load_state_dict(self.state_dict())
        try:
            yield
        finally:
            network.load_state_dict(own)

    def checkpoint_entry(self, training_weights: dict[str, torch.Tensor]) -> dict:
        """Beside a checkpoint whose network_weights are the average: the network's own weights and the
        average's step count, what `load` needs to continue both."""
        return {"decay": self.decay, "steps": int(self.average.n_averaged), "training_weights": training_weights}

    def load(self, network: nn.Module, averaged_weights: dict[str, torch.Tensor], entry: dict) -> None:
        """The average from a checkpoint's network_weights, the network's own weights from `entry`."""
        self.average.module.load_state_dict(averaged_weights)
        self.average.n_averaged.fill_(entry["steps"])
        network.load_state_dict(entry["training_weights"])
