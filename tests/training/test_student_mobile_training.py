"""The inverted-residual student inside real nnU-Net on the tiny dataset: `nnUNetv2_train -tr
nnUNetTrainerHLFDMobile` and `nnUNetv2_predict` from its checkpoint without the teacher, and HLFD and every
peer method distilling into it for a step (2d, and HLFD in 3d_fullres)."""

import re

import numpy as np
import pytest
import torch
from method_terms import HLFD_TERMS, MOBILE_METHODS
from nnunet_runs import DATASET_ID, DATASET_NAME, run_command
from student_prediction import assert_predicts_without_the_teacher

from nnunetv2_hlfd.training.student_mobile import InvertedResidualUNet

pytestmark = pytest.mark.integration
TRAINED = "nnUNetTrainerHLFDMobile_tiny"


def load(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def initialized(name: str, configuration: str = "2d"):
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args(str(DATASET_ID), configuration, 0, name, device=torch.device("cpu"))
    trainer.initialize()
    return trainer


@pytest.fixture(scope="module")
def hlfd_mobile_2d(nnunet_dirs, teacher_2d):
    """One epoch of HLFD into the inverted-residual student through the nnUNetv2_train command."""
    command = ["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", TRAINED, "-device", "cpu"]
    run_command(command, env={"HLFD_TEST_EPOCHS": "1"})
    return nnunet_dirs["nnUNet_results"] / DATASET_NAME / f"{TRAINED}__nnUNetPlans__2d" / "fold_0"


@pytest.fixture(scope="module")
def one_batch(nnunet_dirs):
    """One augmented training batch of the tiny 2d plan, taken by the plain inverted-residual student."""
    return next(initialized("nnUNetTrainerStudentMobile").get_dataloaders()[0])


def test_the_checkpoint_holds_the_inverted_residual_student_and_the_adapters_beside_it(hlfd_mobile_2d):
    from nnunetv2_hlfd.models.model_plans import ModelPlans
    from nnunetv2_hlfd.utilities.trainer_search import find_trainer_class

    checkpoint = load(hlfd_mobile_2d / "checkpoint_final.pth")
    student = ModelPlans.of_folder(hlfd_mobile_2d.parent, "2d").build_network(find_trainer_class(TRAINED))
    assert isinstance(student, InvertedResidualUNet)
    assert checkpoint["network_weights"].keys() == student.state_dict().keys()
    assert any(k.startswith("terms.UPD.") for k in checkpoint["distillation"]["state_dict"])
    assert all(np.isfinite(checkpoint["logging"][f"distill_{term}"]).all() for term in HLFD_TERMS)


def test_the_training_log_names_the_family_and_its_cost_is_at_most_10_percent_of_the_teacher(hlfd_mobile_2d):
    log_text = "".join(p.read_text() for p in hlfd_mobile_2d.glob("training_log_*.txt"))
    assert "(inverted-residual family)" in log_text
    cost_line = re.search(r"Reference: the teacher \(nnUNetTrainer\)\. Student / teacher cost: .*", log_text)
    shares = [float(share) for share in re.findall(r"= ([\d.]+)%", cost_line.group(0))]
    assert len(shares) == 2 and all(0 < share <= 10 for share in shares), cost_line.group(0)


def test_nnunetv2_predict_runs_the_inverted_residual_student_without_the_teacher(
    hlfd_mobile_2d, nnunet_dirs, teacher_2d, tmp_path
):
    images = nnunet_dirs["nnUNet_raw"] / DATASET_NAME / "imagesTr"
    assert_predicts_without_the_teacher(
        images, teacher_2d, tmp_path, TRAINED, "--disable_tta", "-npp", "1", "-nps", "1"
    )


def test_the_plain_inverted_residual_student_takes_a_step(one_batch):
    trainer = initialized("nnUNetTrainerStudentMobile")
    assert isinstance(trainer.unwrapped_network, InvertedResidualUNet)
    assert np.isfinite(trainer.train_step(one_batch)["loss"])


@pytest.mark.parametrize("name", [n for n in MOBILE_METHODS if n != "nnUNetTrainerHLFDMobile"])
def test_each_method_distils_into_the_inverted_residual_student(teacher_2d, one_batch, name):
    trainer = initialized(name)
    assert isinstance(trainer.unwrapped_network, InvertedResidualUNet)
    assert trainer.distiller.term_names == MOBILE_METHODS[name]
    student_before = [p.detach().clone() for p in trainer.network.parameters()]
    result = trainer.train_step(one_batch)
    assert np.isfinite(result["loss"]) and torch.isfinite(result["distillation_terms"]).all()
    assert any(not torch.equal(a, b) for a, b in zip(student_before, trainer.network.parameters()))


def test_hlfd_distils_into_the_inverted_residual_student_in_3d_fullres(nnunet_dirs, teacher_3d):
    trainer = initialized("nnUNetTrainerHLFDMobile", "3d_fullres")
    assert trainer.distiller.geometry.student.spatial_dims == 3
    assert trainer.distiller.term_names == HLFD_TERMS
    result = trainer.train_step(next(trainer.get_dataloaders()[0]))
    assert np.isfinite(result["loss"]) and torch.isfinite(result["distillation_terms"]).all()
