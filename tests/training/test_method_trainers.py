"""Every peer-method and HLFD-ablation trainer inside real nnU-Net training on the tiny dataset:
peer methods train an epoch of two iterations, save their adapters beside the student and
predict through nnU-Net (one through the nnUNetv2_predict command); the ablations are checked
at initialisation, one training step and a checkpoint round trip; the reference loss on its own.

CI time: everything runs in this process on one shared batch where it can, and the progress
plot (tested in test_hlfd_training.py, half the cost of a tiny run) is not drawn here."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from method_terms import MOBILE_METHODS
from nnunet_runs import DATASET_ID, DATASET_NAME, nnunet_predict

pytestmark = pytest.mark.integration

# trainer -> the terms it must run on the tiny 2d plan
PEER_METHODS = {
    "nnUNetTrainerKD": ["KD"],
    "nnUNetTrainerKDSmall": ["KD"],
    "nnUNetTrainerAT": ["AT"],
    "nnUNetTrainerFitNets": ["FitNets"],
    "nnUNetTrainerSKD": ["SKD_pixel", "SKD_pair"],
    "nnUNetTrainerIFVD": ["IFVD", "IFVD_pixel", "IFVD_holistic"],
    "nnUNetTrainerCWD": ["CWD"],
    "nnUNetTrainerEMKD": ["EMKD_PMD", "EMKD_IMD", "EMKD_RAD"],
    "nnUNetTrainerSKD_Holistic": ["SKD_pixel", "SKD_pair", "SKD_holistic"],
}
ABLATIONS = {
    "nnUNetTrainerHLFD_FLFD": ["UFD", "IFD"],
    "nnUNetTrainerHLFD_PLFD": ["UPD", "IPD"],
    "nnUNetTrainerHLFD_UFD": ["UFD"],
    "nnUNetTrainerHLFD_IFD": ["IFD"],
    "nnUNetTrainerHLFD_UPD": ["UPD"],
    "nnUNetTrainerHLFD_IPD": ["IPD"],
    "nnUNetTrainerHLFD_HIFD": ["IFD", "IPD"],
    "nnUNetTrainerHLFD_IFDArea": ["UFD", "IFD", "UPD", "IPD"],
    "nnUNetTrainerHLFDSmall": ["UFD", "IFD", "UPD", "IPD"],
    "nnUNetTrainerHLFDLarge": ["UFD", "IFD", "UPD", "IPD"],
}
# Distillation trainers tested in other modules (test_hlfd_training.py) or below on their own.
TESTED_ELSEWHERE = {
    "nnUNetTrainerHLFD",
    "nnUNetTrainerHLFD_PaperLoss",
    "nnUNetTrainerHLFD_WarmupEMA",  # test_student_average.py, test_weight_schedule.py
    "nnUNetTrainerHLFD_Cosine",  # test_weight_schedule.py
    *MOBILE_METHODS,  # test_student_mobile_training.py
}
PREDICTED_WITH_THE_COMMAND = "nnUNetTrainerEMKD"


def test_every_distillation_trainer_of_the_project_is_tested_here():
    import importlib.util

    from nnunetv2_hlfd.training.distillation_trainer import nnUNetTrainerDistillation

    spec = importlib.util.spec_from_file_location(
        "tiny_runs", Path(__file__).parents[1] / "ext_trainers" / "nnUNetTrainerTinyRuns.py"
    )
    tiny_runs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny_runs)
    distillation_trainers = {
        name
        for name in tiny_runs.PROJECT_TRAINERS
        if issubclass(tiny_runs._project_trainer(name), nnUNetTrainerDistillation)
    }
    assert distillation_trainers == set(PEER_METHODS) | set(ABLATIONS) | TESTED_ELSEWHERE


def load(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def trainer_for(name: str, configuration: str = "2d"):
    from nnunetv2.run.run_training import get_trainer_from_args

    return get_trainer_from_args(str(DATASET_ID), configuration, 0, f"{name}_tiny", device=torch.device("cpu"))


def train_one_epoch(name: str):
    trainer = trainer_for(name)
    trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch = 1, 2, 1
    trainer.logger.plot_progress_png = lambda output_folder: None
    trainer.initialize()  # as run_training would, so the untrained adapters can be kept for comparison
    trainer.adapters_at_start = {k: v.detach().clone() for k, v in trainer.distiller.state_dict().items()}
    trainer.run_training()
    return trainer


def first_validation_case(nnunet_dirs, trainer) -> Path:
    case = trainer.do_split()[1][0]
    return nnunet_dirs["nnUNet_raw"] / DATASET_NAME / "imagesTr" / f"{case}_0000.nii.gz"


def assert_a_label_map(prediction: np.ndarray, image: Path) -> None:
    assert prediction.shape == sitk.GetArrayFromImage(sitk.ReadImage(str(image))).shape
    assert set(np.unique(prediction)) <= {0, 1, 2}


@pytest.fixture(scope="module")
def peer_runs(nnunet_dirs, teacher_2d) -> dict:
    """One epoch of two iterations per peer method, in process."""
    return {name: train_one_epoch(name) for name in PEER_METHODS}


@pytest.fixture(scope="module")
def one_batch(nnunet_dirs, teacher_2d) -> dict:
    """One augmented training batch of the tiny 2d plan, shared by the single-step checks."""
    return next(initialized("nnUNetTrainerStudent").get_dataloaders()[0])  # the student needs no teacher


def initialized(name: str, configuration: str = "2d"):
    trainer = trainer_for(name, configuration)
    trainer.initialize()
    return trainer


@pytest.mark.parametrize("name", PEER_METHODS)
def test_peer_method_trains_and_logs_its_terms(peer_runs, name):
    trainer = peer_runs[name]
    assert trainer.distiller.term_names == PEER_METHODS[name]
    assert trainer.distiller.weights == dict(trainer.distillation.weights)
    logging = load(Path(trainer.output_folder) / "checkpoint_final.pth")["logging"]
    for term in PEER_METHODS[name]:
        assert len(logging[f"distill_{term}"]) == 1 and np.isfinite(logging[f"distill_{term}"][0]), term


@pytest.mark.parametrize("name", PEER_METHODS)
def test_checkpoint_holds_the_adapters_beside_the_student(peer_runs, name):
    trainer = peer_runs[name]
    checkpoint = load(Path(trainer.output_folder) / "checkpoint_final.pth")
    saved = checkpoint["distillation"]["state_dict"]
    assert saved.keys() == trainer.distiller.state_dict().keys()
    assert checkpoint["network_weights"].keys() == trainer.unwrapped_network.state_dict().keys()
    assert not any(key.startswith("terms.") for key in checkpoint["network_weights"])


def test_fitnets_regressor_is_trained_and_saved(peer_runs):
    trainer = peer_runs["nnUNetTrainerFitNets"]
    saved = load(Path(trainer.output_folder) / "checkpoint_final.pth")["distillation"]["state_dict"]
    keys = {"terms.FitNets.regressor.weight", "terms.FitNets.regressor.bias"}
    assert keys <= saved.keys()
    for key in keys:  # two steps of the student's optimiser moved every regressor parameter
        assert saved[key].shape == trainer.adapters_at_start[key].shape, key
        assert not torch.equal(saved[key].cpu(), trainer.adapters_at_start[key].cpu()), f"{key} was not trained"


def test_peer_adapters_are_restored_by_load_checkpoint(peer_runs):
    trainer = peer_runs["nnUNetTrainerFitNets"]
    checkpoint = Path(trainer.output_folder) / "checkpoint_final.pth"
    saved = load(checkpoint)["distillation"]["state_dict"]
    restored = trainer_for("nnUNetTrainerFitNets")
    restored.load_checkpoint(str(checkpoint))  # what --c does; a fresh trainer's regressor is random
    assert restored.distiller.state_dict().keys() == saved.keys()
    for key, value in saved.items():
        assert torch.equal(restored.distiller.state_dict()[key].cpu(), value.cpu()), key


def test_skd_holistic_trains_its_critic_in_a_step_and_restores_it(one_batch, tmp_path):
    from nnunetv2.run.run_training import get_trainer_from_args

    def skd_holistic():  # no _tiny variant: a single step needs none
        return get_trainer_from_args(str(DATASET_ID), "2d", 0, "nnUNetTrainerSKD_Holistic", device=torch.device("cpu"))

    trainer = skd_holistic()
    trainer.initialize()
    assert trainer.distiller.term_names == ["SKD_pixel", "SKD_pair", "SKD_holistic"]
    critic_before = {k: v.clone() for k, v in trainer.distiller.state_dict().items()}
    result = trainer.train_step(one_batch)
    assert np.isfinite(result["loss"]) and torch.isfinite(result["distillation_terms"]).all()
    trained = trainer.distiller.state_dict()
    assert critic_before and all(not torch.equal(v, trained[k]) for k, v in critic_before.items())
    trainer.save_checkpoint(str(tmp_path / "checkpoint.pth"))
    restored = skd_holistic()
    restored.load_checkpoint(str(tmp_path / "checkpoint.pth"))
    for key, value in trained.items():
        assert torch.equal(restored.distiller.state_dict()[key].cpu(), value.cpu()), key


def assert_predicts_through_nnunet(trainer, nnunet_dirs) -> None:
    """nnU-Net's predictor, from the trained results folder alone, gives a label map of the case."""
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    image = first_validation_case(nnunet_dirs, trainer)
    predictor = nnUNetPredictor(device=torch.device("cpu"), allow_tqdm=False, use_mirroring=False)
    predictor.initialize_from_trained_model_folder(str(Path(trainer.output_folder).parent), (0,))
    # The in-process path of nnU-Net's predictor: no worker processes to start.
    prediction = predictor.predict_single_npy_array(*SimpleITKIO().read_images([str(image)]))
    assert_a_label_map(prediction, image)


@pytest.mark.parametrize("name", [n for n in PEER_METHODS if n != PREDICTED_WITH_THE_COMMAND])
def test_peer_student_predicts_through_nnunet(peer_runs, nnunet_dirs, name):
    assert_predicts_through_nnunet(peer_runs[name], nnunet_dirs)


@pytest.mark.parametrize("name", [*ABLATIONS, "nnUNetTrainerHLFD_PaperLoss"])
def test_ablation_trains_an_epoch_and_its_student_predicts_through_nnunet(nnunet_dirs, teacher_2d, name):
    trainer = train_one_epoch(name)
    assert trainer.distiller.term_names == ABLATIONS.get(name, ["UFD", "IFD", "UPD", "IPD"])
    assert (Path(trainer.output_folder) / "checkpoint_final.pth").is_file()
    assert_predicts_through_nnunet(trainer, nnunet_dirs)


def test_nnunetv2_predict_command_runs_a_peer_student(peer_runs, nnunet_dirs, tmp_path):
    image = first_validation_case(nnunet_dirs, peer_runs[PREDICTED_WITH_THE_COMMAND])
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(image, inputs)
    trainer = f"{PREDICTED_WITH_THE_COMMAND}_tiny"
    nnunet_predict(inputs, tmp_path / "out", trainer, "--disable_tta", "-npp", "1", "-nps", "1")
    prediction = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / image.name.replace("_0000", ""))))
    assert_a_label_map(prediction, image)


def test_a_peer_method_takes_a_step_in_3d_fullres(nnunet_dirs, teacher_3d):
    trainer = initialized("nnUNetTrainerEMKD", "3d_fullres")
    assert trainer.distiller.geometry.student.spatial_dims == 3
    assert trainer.distiller.term_names == PEER_METHODS["nnUNetTrainerEMKD"]
    result = trainer.train_step(next(trainer.get_dataloaders()[0]))
    assert np.isfinite(result["loss"]) and torch.isfinite(result["distillation_terms"]).all()


@pytest.mark.parametrize("name", ABLATIONS)
def test_ablation_runs_its_terms_for_a_step_and_round_trips_its_checkpoint(one_batch, name, tmp_path):
    trainer = initialized(name)
    assert trainer.distiller.term_names == ABLATIONS[name]
    adapters_before = {k: v.clone() for k, v in trainer.distiller.state_dict().items()}
    result = trainer.train_step(one_batch)
    assert np.isfinite(result["loss"]) and torch.isfinite(result["distillation_terms"]).all()
    trained = trainer.distiller.state_dict()
    assert not adapters_before or any(not torch.equal(v, trained[k]) for k, v in adapters_before.items())
    trainer.save_checkpoint(str(tmp_path / "checkpoint.pth"))
    restored = trainer_for(name)
    restored.load_checkpoint(str(tmp_path / "checkpoint.pth"))
    assert restored.distiller.term_names == ABLATIONS[name]
    for key, value in trained.items():
        assert torch.equal(restored.distiller.state_dict()[key].cpu(), value.cpu()), key
    for key, value in trainer.unwrapped_network.state_dict().items():
        assert torch.equal(restored.unwrapped_network.state_dict()[key].cpu(), value.cpu()), key


# ---- the reference code's segmentation loss ---------------------------------------------
def paper_loss_trainer(nnunet_dirs, label_dict: dict, regions_class_order=None):
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    trainer = trainer_for("nnUNetTrainerHLFD_PaperLoss")
    trainer.label_manager = LabelManager(label_dict, regions_class_order)
    return trainer


def deep_supervision_weights(num_scales: int) -> np.ndarray:
    weights = np.array([1 / 2**i for i in range(num_scales)])
    weights[-1] = 0  # nnU-Net leaves out the coarsest scale
    return weights / weights.sum()


def test_paper_loss_is_the_reference_calc_loss_at_nnunet_deep_supervision_weights(nnunet_dirs):
    from reference_ports import reference_ports

    trainer = paper_loss_trainer(nnunet_dirs, {"background": 0, "tumor": 1})  # the reference's two classes
    loss = trainer._build_loss()
    generator = torch.Generator().manual_seed(0)
    sizes = [(48 // 2**k,) * 2 for k in range(len(trainer._get_deep_supervision_scales()))]
    outputs = [torch.randn(2, 2, *s, generator=generator) for s in sizes]
    targets = [torch.randint(0, 2, (2, 1, *s), generator=generator).float() for s in sizes]
    expected = sum(
        w * reference_ports().reference_calc_loss(o, torch.cat([1 - t, t], 1))
        for w, o, t in zip(deep_supervision_weights(len(sizes)), outputs, targets)
    )
    assert loss(outputs, targets).item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("regions", [False, True], ids=["labels", "regions"])
def test_paper_loss_takes_sigmoid_regions_for_a_region_dataset(nnunet_dirs, regions):
    labels = {"background": 0, "kidney": (1, 2), "tumor": 2} if regions else {"background": 0, "kidney": 1, "tumor": 2}
    trainer = paper_loss_trainer(nnunet_dirs, labels, [1, 2] if regions else None)
    assert trainer._build_loss().loss.regions is regions


def test_paper_loss_refuses_an_ignore_label_dataset_and_names_the_fix(nnunet_dirs):
    from nnunetv2_hlfd.utilities.environment import UserFacingError

    trainer = paper_loss_trainer(nnunet_dirs, {"background": 0, "kidney": 1, "tumor": 2, "ignore": 3})
    with pytest.raises(UserFacingError, match="ignore label.*Train nnUNetTrainerHLFD"):
        trainer._build_loss()


def test_paper_loss_trainer_trains_hlfd_with_the_reference_focal_dice(one_batch):
    trainer = initialized("nnUNetTrainerHLFD_PaperLoss")
    assert trainer.distiller.term_names == ["UFD", "IFD", "UPD", "IPD"]
    assert type(trainer.loss.loss).__name__ == "ReferenceFocalDiceLoss"
    assert np.isfinite(trainer.train_step(one_batch)["loss"])
