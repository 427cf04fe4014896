"""An HLFD trainer built from tiny nnU-Net plans with a random teacher, no dataset: its log lines kept in
`trainer.logged` instead of a file."""

import torch

from nnunetv2_hlfd.training.offline_plans import kits_like_fingerprint, plan
from nnunetv2_hlfd.training.offline_trainers import initialized_trainer, method_trainer, random_teacher

CPU = torch.device("cpu")


def logging_hlfd_trainer():
    plans, dataset_json = plan("default", kits_like_fingerprint(10, (8, 32, 32)))
    teacher = random_teacher(plans, "2d", dataset_json, CPU)
    trainer = initialized_trainer(method_trainer("HLFD"), plans, "2d", dataset_json, CPU, teacher)
    trainer.logged = []
    trainer.print_to_log_file = lambda *args, **kwargs: trainer.logged.append(" ".join(map(str, args)))
    return trainer
