"""Test-only trainers: the project's trainers shortened to a handful of iterations.

nnU-Net finds them through nnUNet_extTrainer like any trainer, so the tests drive the
real `nnUNetv2_train` / `nnUNetv2_predict` commands. HLFD_TEST_EPOCHS sets the length.
"""
import os

import torch
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name


def _tiny(base_name: str) -> type:
    base = recursive_find_trainer_class_by_name(base_name)

    # nnU-Net records __init__'s arguments by name, so the signature must be the base's.
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        base.__init__(self, plans, configuration, fold, dataset_json, device)
        self.num_epochs = int(os.environ.get("HLFD_TEST_EPOCHS", "2"))
        self.num_iterations_per_epoch = 2
        self.num_val_iterations_per_epoch = 1
        self.save_every = int(os.environ.get("HLFD_TEST_SAVE_EVERY", "50"))

    return type(f"{base_name}_tiny", (base,), {"__init__": __init__})


nnUNetTrainerHLFD_tiny = _tiny("nnUNetTrainerHLFD")
nnUNetTrainerStudent_tiny = _tiny("nnUNetTrainerStudent")
