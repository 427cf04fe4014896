"""Distillation with nnU-Net's deep supervision off (enable_deep_supervision=False): the segmentation
loss sees the final output alone, and the terms still read every student head."""

import numpy as np
import pytest
import torch
from offline_hlfd import CPU, tiny_plans

from nnunetv2_hlfd.distillation.config import DistillationConfig, hlfd_config
from nnunetv2_hlfd.distillation.maps import UNetMaps
from nnunetv2_hlfd.speed.offline_trainers import initialized_trainer, method_trainer, random_teacher, synthetic_batch


def without_deep_supervision(trainer_class: type) -> type:
    def initialize(self):
        self.enable_deep_supervision = False  # read by initialize to build the network and the loss
        trainer_class.initialize(self)

    return type(trainer_class.__name__, (trainer_class,), {"initialize": initialize})


@pytest.fixture(scope="module")
def plans_and_teacher():
    plans, dataset_json = tiny_plans()
    return plans, dataset_json, random_teacher(plans, "2d", dataset_json, CPU)


def trainer_without_deep_supervision(plans_and_teacher, method):
    plans, dataset_json, teacher = plans_and_teacher
    trainer_class = without_deep_supervision(method_trainer(method, "NoDeepSupervision"))
    return initialized_trainer(trainer_class, plans, "2d", dataset_json, CPU, teacher)


def test_the_student_returns_every_head_to_the_terms_and_the_final_output_otherwise(plans_and_teacher):
    trainer = trainer_without_deep_supervision(plans_and_teacher, "HLFD")
    network = trainer.unwrapped_network
    data = synthetic_batch(trainer)["data"]
    outputs, encoder_maps = network(data, return_encoder_maps=True)
    assert len(outputs) == len(encoder_maps) - 1  # O(0) .. O(N-2)
    assert not network.decoder.deep_supervision  # switched back: prediction and validation see one output
    final = network(data)
    assert torch.is_tensor(final) and torch.allclose(final, outputs[0])


def test_hlfd_trains_every_term_with_deep_supervision_off(plans_and_teacher):
    trainer = trainer_without_deep_supervision(plans_and_teacher, "HLFD")
    assert type(trainer.loss).__name__ != "DeepSupervisionWrapper"  # nnU-Net's loss on the final output alone
    middle_head = trainer.unwrapped_network.decoder.seg_layers[0].weight
    before = middle_head.detach().clone()
    result = trainer.train_step(synthetic_batch(trainer))
    assert np.isfinite(result["loss"])
    assert trainer.distiller.term_names == ["UFD", "IFD", "UPD", "IPD"]
    assert torch.isfinite(result["distillation_terms"]).all()
    assert not torch.equal(middle_head.detach(), before)  # a middle head, trained by IPD alone


def test_a_term_that_reads_no_heads_trains_with_deep_supervision_off(plans_and_teacher):
    trainer = trainer_without_deep_supervision(plans_and_teacher, hlfd_config(terms=("UFD",)))
    result = trainer.train_step(synthetic_batch(trainer))
    assert np.isfinite(result["loss"]) and torch.isfinite(result["distillation_terms"]).all()


def test_peer_terms_read_the_final_head_with_deep_supervision_off(plans_and_teacher):
    heads = DistillationConfig(weights={"KD": 1.0, "CWD": 1.0, "EMKD_PMD": 1.0}, options={"KD": {"all_scales": True}})
    trainer = trainer_without_deep_supervision(plans_and_teacher, heads)
    batch = synthetic_batch(trainer)
    network = trainer.unwrapped_network
    with torch.no_grad():  # the values from every head, as a deep-supervised student gives them
        skips = network.encoder(batch["data"])
        network.decoder.deep_supervision = True
        every_head = network.decoder(skips)
        network.decoder.deep_supervision = False
        expected = trainer.distiller(UNetMaps(skips, every_head), trainer.teacher_forward(batch["data"]))
    result = trainer.train_step(batch)
    assert trainer.distiller.term_names == ["KD", "CWD", "EMKD_PMD"]
    assert np.isfinite(result["loss"])
    torch.testing.assert_close(result["distillation_terms"], torch.stack(list(expected.values())))
