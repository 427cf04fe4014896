"""The student's checkpoints are nnU-Net's own: every field nnU-Net's save_checkpoint writes, of whichever release
is installed, with the distillation trainers' entries beside them."""

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from offline_hlfd import CPU, quiet_trainer, tiny_plans

from nnunetv2_hlfd.speed.offline_trainers import initialized_trainer, random_teacher
from nnunetv2_hlfd.training.student_trainer import nnUNetTrainerStudent

LATER_FIELD = "written_by_a_later_nnunet"


class _LaterNnunetTorch:
    """torch as nnU-Net's trainer module sees it, with a save that writes one more field, as a later release might."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def save(checkpoint, file, *args, **kwargs):
        torch.save({**checkpoint, LATER_FIELD: [1, 2]}, file, *args, **kwargs)


def student_trainer():
    plans, dataset_json = tiny_plans()
    trainer = initialized_trainer(nnUNetTrainerStudent, plans, "2d", dataset_json, CPU)
    trainer.print_to_log_file = lambda *args, **kwargs: None
    return trainer


def test_the_checkpoint_holds_the_fields_nnunets_own_trainer_writes(tmp_path):
    trainer = student_trainer()
    nnUNetTrainer.save_checkpoint(trainer, str(tmp_path / "by_nnunet.pth"))
    trainer.save_checkpoint(str(tmp_path / "by_us.pth"))
    ours, nnunets = (torch.load(tmp_path / f, weights_only=False) for f in ("by_us.pth", "by_nnunet.pth"))
    assert ours.keys() == nnunets.keys()
    assert ours["current_epoch"] == nnunets["current_epoch"] and ours["trainer_name"] == "nnUNetTrainerStudent"
    assert all(torch.equal(ours["network_weights"][k], v) for k, v in nnunets["network_weights"].items())


def test_a_field_a_later_nnunet_writes_is_kept(tmp_path, monkeypatch):
    import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as nnunet_trainer_module

    trainer = student_trainer()
    monkeypatch.setattr(nnunet_trainer_module, "torch", _LaterNnunetTorch())
    trainer.save_checkpoint(str(tmp_path / "checkpoint_latest.pth"))
    assert torch.load(tmp_path / "checkpoint_latest.pth", weights_only=False)[LATER_FIELD] == [1, 2]


def test_a_distillation_checkpoint_is_nnunets_with_its_own_entry_beside(tmp_path, monkeypatch):
    import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as nnunet_trainer_module

    plans, dataset_json = tiny_plans()
    trainer = quiet_trainer("nnUNetTrainerHLFD", plans, dataset_json, random_teacher(plans, "2d", dataset_json, CPU))
    nnUNetTrainer.save_checkpoint(trainer, str(tmp_path / "by_nnunet.pth"))
    monkeypatch.setattr(nnunet_trainer_module, "torch", _LaterNnunetTorch())
    trainer.save_checkpoint(str(tmp_path / "by_us.pth"))
    ours, nnunets = (torch.load(tmp_path / f, weights_only=False) for f in ("by_us.pth", "by_nnunet.pth"))
    assert ours.keys() == nnunets.keys() | {"distillation", LATER_FIELD}
