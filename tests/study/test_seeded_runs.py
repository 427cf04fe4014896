"""A seeded study variant is reproducible: the same seed gives the same training, another seed another one.

Real (tiny) nnU-Net trainings on the CPU with augmentation in the training process (nnUNet_n_proc_DA=0), the
setting under which the study promises repeatable runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from nnunet_runs import DATASET_NAME, with_own_log

from nnunetv2_hlfd.study.curves import read_learning_curve
from nnunetv2_hlfd.study.length import augmenter_seeds, length_variant
from nnunetv2_hlfd.utilities.trainer_search import find_trainer_class

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_thread")]


def train_seeded(trainer: str, seed: int, run: str) -> tuple[dict[str, torch.Tensor], list[float]]:
    """Two iterations of `trainer` with `seed`; its final weights and its training losses."""
    preprocessed = Path(os.environ["nnUNet_preprocessed"]) / DATASET_NAME
    plans = json.loads((preprocessed / "nnUNetPlans.json").read_text())
    dataset_json = json.loads((preprocessed / "dataset.json").read_text())
    plans["continue_training"] = False  # what nnU-Net 2.8's get_trainer_from_args adds
    variant = length_variant(
        find_trainer_class(trainer), 1, 2, name=f"{trainer}_{run}", threads_from_cores=False, seed=seed
    )
    instance = with_own_log(variant(plans, "2d", 0, dataset_json, torch.device("cpu")))
    instance.num_val_iterations_per_epoch = 1
    instance.run_training()
    weights = {k: v.detach().clone() for k, v in instance.network.state_dict().items()}
    # the learning curve read back from nnU-Net's text log is what its logger recorded
    curve = read_learning_curve(Path(instance.output_folder))
    logged = instance.logger.local_logger.my_fantastic_logging
    assert curve.epochs == 1 and len(curve.pseudo_dice[0]) == 2  # kidney and tumour
    assert curve.train_loss[0] == pytest.approx(logged["train_losses"][0], abs=1e-4)
    assert curve.pseudo_dice[0] == pytest.approx(logged["dice_per_class_or_region"][0], abs=1e-4)
    return weights, list(logged["train_losses"])


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_same_seed_gives_the_same_run_and_another_seed_another(nnunet_dirs, monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    first, first_losses = train_seeded("nnUNetTrainerStudent", 3, "seeded_a")
    again, again_losses = train_seeded("nnUNetTrainerStudent", 3, "seeded_b")
    other, other_losses = train_seeded("nnUNetTrainerStudent", 4, "seeded_c")
    assert same_weights(first, again) and first_losses == again_losses
    assert not same_weights(first, other) and first_losses != other_losses


def test_augmentation_workers_get_seeds_of_their_own():
    seeds = augmenter_seeds(1, 3) + augmenter_seeds(2, 3)
    assert len(set(seeds)) == 6
    assert augmenter_seeds(1, 3) == augmenter_seeds(1, 3)
