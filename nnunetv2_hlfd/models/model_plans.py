"""A model's plans: the network they define for one configuration, as its trainer class builds it.

The one place that turns nnU-Net's plans, dataset.json and a trainer class into a network (the teacher,
the exported student, the benchmark's cost column, the training log's cost line all do), and the one
definition of a network's total stride.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn


def total_stride(strides: Sequence[Sequence[int] | int], dims: int | None = None) -> tuple[int, ...]:
    """The product of every stage's stride per axis: what a patch size must be a multiple of.

    `strides` is one entry per stage, each per axis or (with `dims`) one int for every axis."""
    per_axis = [[s] * dims if isinstance(s, int) else list(s) for s in strides]
    return tuple(int(math.prod(axis)) for axis in zip(*per_axis))


@dataclass(frozen=True)
class ModelPlans:
    plans_manager: PlansManager
    configuration_manager: ConfigurationManager
    dataset_json: dict

    @classmethod
    def of_folder(cls, model_folder: Path, configuration: str) -> ModelPlans:
        """The plans.json and dataset.json of a trained model's folder (the one holding fold_X/)."""
        plans_manager = PlansManager(str(Path(model_folder) / "plans.json"))
        dataset_json = json.loads((Path(model_folder) / "dataset.json").read_text())
        return cls(plans_manager, plans_manager.get_configuration(configuration), dataset_json)

    @property
    def num_input_channels(self) -> int:
        return determine_num_input_channels(self.plans_manager, self.configuration_manager, self.dataset_json)

    @property
    def num_segmentation_heads(self) -> int:
        return self.plans_manager.get_label_manager(self.dataset_json).num_segmentation_heads

    @property
    def patch_size(self) -> tuple[int, ...]:
        return tuple(self.configuration_manager.patch_size)

    @property
    def total_stride(self) -> tuple[int, ...]:
        return total_stride(self.configuration_manager.network_arch_init_kwargs["strides"], len(self.patch_size))

    def build_network(self, trainer_class: type, deep_supervision: bool = False) -> nn.Module:
        """The untrained network `trainer_class` builds from these plans (its own
        build_network_architecture, so a student trainer builds its student)."""
        return trainer_class.build_network_architecture(
            self.plans_manager,
            self.configuration_manager,
            self.num_input_channels,
            self.num_segmentation_heads,
            deep_supervision,
        )
