"""nnUNetTrainerStudent: the ResNet18-style student trained by nnU-Net without distillation."""

from __future__ import annotations

import io
import os

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch import nn
from torch._dynamo import OptimizedModule

from nnunetv2_hlfd.models.cost import cost_ratio_line, model_cost
from nnunetv2_hlfd.models.model_plans import ModelPlans
from nnunetv2_hlfd.training.student import RESNET18_STYLE, StudentSize, build_student, student_width_factor


class nnUNetTrainerStudent(nnUNetTrainer):
    """The 'w/o KD' baseline: the student of HLFD_SPEC.md with nnU-Net's own loss and schedule.

    `student_family` and `student_size` set the student's kind, widths and budget; class attributes, so
    nnUNetv2_predict, which builds the network from the trainer class, rebuilds the same student."""

    student_family = RESNET18_STYLE
    student_size = StudentSize()

    @classmethod
    def build_network_architecture(
        cls,
        plans_manager,
        configuration_manager,
        num_input_channels,
        num_output_channels,
        enable_deep_supervision: bool = True,
    ) -> nn.Module:
        return build_student(
            configuration_manager,
            num_input_channels,
            num_output_channels,
            enable_deep_supervision,
            cls.student_size,
            cls.student_family,
        )

    def on_train_start(self):
        super().on_train_start()
        self.print_to_log_file(self._student_line())
        self.print_to_log_file(self._cost_line())

    def _student_line(self) -> str:
        width_factor = student_width_factor(
            self.configuration_manager,
            self.num_input_channels,
            self.label_manager.num_segmentation_heads,
            self.student_size,
            self.student_family,
        )
        return (
            f"Student: {self.student_size}: widths {width_factor:g} of the plan's, "
            f"{self.unwrapped_network.encoder.output_channels} ({self.student_family.name} family)."
        )

    def _cost_line(self) -> str:
        """Student versus the network the plans define (the default nnU-Net teacher)."""
        return "Reference: this plan's nnU-Net network. " + self._cost_line_against(
            lambda: self._plans.build_network(nnUNetTrainer, deep_supervision=True)
        )

    def _cost_line_against(self, build_reference) -> str:
        shape = (1, self.num_input_channels, *self.configuration_manager.patch_size)
        student = model_cost(lambda: self._plans.build_network(type(self), deep_supervision=True), shape)
        return cost_ratio_line(student, model_cost(build_reference, shape))

    @property
    def _plans(self) -> ModelPlans:
        return ModelPlans(self.plans_manager, self.configuration_manager, self.dataset_json)

    @property
    def unwrapped_network(self) -> nn.Module:
        network = self.network.module if self.is_ddp else self.network
        return network._orig_mod if isinstance(network, OptimizedModule) else network

    def _checkpoint_entries(self) -> dict:
        """What nnU-Net's own save_checkpoint writes, every field of the installed release (it is run into
        memory and read back); subclasses add their own entries beside it."""
        written = io.BytesIO()
        nnUNetTrainer.save_checkpoint(self, written)  # torch.save takes a file object as well as a name
        written.seek(0)
        return torch.load(written, map_location="cpu", weights_only=False)

    def save_checkpoint(self, filename: str) -> None:
        """As nnU-Net's, but written to a temporary file and renamed, so a crash mid-write
        never replaces the last good checkpoint."""
        if self.local_rank != 0:
            return
        if self.disable_checkpointing:
            self.print_to_log_file("No checkpoint written, checkpointing is disabled")
            return
        atomic_torch_save(self._checkpoint_entries(), filename)


def atomic_torch_save(obj, filename) -> None:
    """torch.save to a temporary file renamed over the target: a process that dies while
    writing leaves the previous checkpoint in place."""
    partial = f"{filename}.partial"
    try:
        torch.save(obj, partial)
        os.replace(partial, filename)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
