"""HLFD trainers built from tiny nnU-Net plans with a random teacher, no dataset."""

import torch

from nnunetv2_hlfd.speed.offline_plans import kits_like_fingerprint, plan
from nnunetv2_hlfd.speed.offline_trainers import initialized_trainer, method_trainer, random_teacher, synthetic_batch

CPU = torch.device("cpu")


def tiny_plans() -> tuple[dict, dict]:
    """nnU-Net's default plans and dataset.json for a small KiTS-like CT fingerprint."""
    return plan("default", kits_like_fingerprint(10, (8, 32, 32)))


def hlfd_trainer(plans: dict, dataset_json: dict, teacher):
    """The initialized 2d HLFD trainer of these plans, distilling `teacher` on the CPU."""
    return initialized_trainer(method_trainer("HLFD"), plans, "2d", dataset_json, CPU, teacher)


def logging_hlfd_trainer():
    """An HLFD trainer of tiny plans and a random teacher, its log lines kept in `trainer.logged`."""
    plans, dataset_json = tiny_plans()
    trainer = hlfd_trainer(plans, dataset_json, random_teacher(plans, "2d", dataset_json, CPU))
    trainer.logged = []
    trainer.print_to_log_file = lambda *args, **kwargs: trainer.logged.append(" ".join(map(str, args)))
    return trainer


def quiet_trainer(method, plans: dict, dataset_json: dict, teacher, seed: int = 0):
    """The initialized 2d trainer of `method` (a trainer name or a DistillationConfig) distilling `teacher` on the
    CPU, its network and adapters initialised from `seed`, logging nothing (its results folder is gone)."""
    torch.manual_seed(seed)
    trainer = initialized_trainer(method_trainer(method), plans, "2d", dataset_json, CPU, teacher)
    trainer.print_to_log_file = lambda *args, **kwargs: None
    return trainer


def train_epoch(trainer, steps: int = 2) -> None:
    """One epoch as run_training runs it, up to where nnU-Net's on_epoch_end writes its checkpoints (the
    epoch counter not yet advanced): fixed batches of the epoch, no validation."""
    trainer.on_train_epoch_start()
    for step in range(steps):
        trainer.train_step(synthetic_batch(trainer, seed=1000 * trainer.current_epoch + step))
