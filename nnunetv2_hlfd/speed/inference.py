"""`nnunetv2_hlfd speed --inference`: one forward pass on one patch of nnU-Net's own plans, the teacher beside
each student family, as a scanner or laptop would run them (eval mode, no gradients, no deep supervision).

Random weights (they do not change a forward pass's cost); the networks are the ones the trainers build from the
plans, so the inverted-residual student is sized to its budget on each plan as in training. The benchmark
(`nnunetv2_hlfd benchmark`) times trained models on a dataset's own plans, per patch and per whole volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from torch.utils.benchmark.utils.common import Measurement

from nnunetv2_hlfd.models.cost import ModelCost, model_cost
from nnunetv2_hlfd.models.model_plans import ModelPlans
from nnunetv2_hlfd.speed.offline_plans import plan, scaled_down
from nnunetv2_hlfd.speed.step_time import Setting
from nnunetv2_hlfd.utilities.timing import time_side_by_side
from nnunetv2_hlfd.utilities.trainer_search import find_trainer_class

# What each row times: the plan's own network and the default student of each family.
NETWORKS = {
    "teacher": "nnUNetTrainer",
    "ResNet18-style student": "nnUNetTrainerStudent",
    "ResNet18-style Small student": "nnUNetTrainerStudentSmall",
    "inverted-residual student": "nnUNetTrainerStudentMobile",
}


@dataclass
class InferenceResult:
    setting: Setting
    patch_size: list[int]
    times: dict[str, Measurement]
    costs: dict[str, ModelCost]

    def speedup(self, name: str) -> float:
        """The teacher's median time over the network's."""
        return self.times["teacher"].median / self.times[name].median


def measure_inference(setting: Setting, device: torch.device, warmup: int, steps: int) -> InferenceResult:
    plans, dataset_json = plan(setting.planner, setting.fingerprint)
    plans = scaled_down(plans, setting.configuration, setting.patch_factor, batch_size=1)
    plans_manager = PlansManager(plans)
    model = ModelPlans(plans_manager, plans_manager.get_configuration(setting.configuration), dataset_json)
    patch = torch.randn((1, model.num_input_channels, *model.patch_size), device=device)
    classes = {name: find_trainer_class(trainer) for name, trainer in NETWORKS.items()}
    networks = {name: model.build_network(trainer).to(device).eval() for name, trainer in classes.items()}

    def forward(network):
        with torch.no_grad():
            return network(patch)

    times = time_side_by_side({name: (lambda n=n: forward(n)) for name, n in networks.items()}, device, warmup, steps)
    costs = {name: model_cost(lambda t=t: model.build_network(t), patch.shape) for name, t in classes.items()}
    return InferenceResult(setting, list(model.patch_size), times, costs)


def inference_table(results: list[InferenceResult]) -> str:
    header = (
        "| setting | patch | network | forward (ms) | teacher / network | parameters / multiply-adds of the teacher's |"
    )
    rows = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in results:
        teacher = r.costs["teacher"]
        for name in NETWORKS:
            cost = r.costs[name]
            share = f"{cost.parameters / teacher.parameters:.1%} / {cost.macs_per_patch / teacher.macs_per_patch:.1%}"
            speedup = "-" if name == "teacher" else f"{r.speedup(name):.2f}x"
            patch = "x".join(map(str, r.patch_size))
            cells = [r.setting.name, patch, name, _milliseconds(r.times[name]), speedup, share]
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _milliseconds(measurement: Measurement) -> str:
    return f"{measurement.median * 1e3:.1f} ± {measurement.iqr / 2 * 1e3:.1f}"
