"""The student exported to TorchScript and ONNX gives PyTorch's logits, at any valid size."""
from pathlib import Path

import pytest
import torch
from batchgenerators.utilities.file_and_folder_operations import save_json
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_hlfd import cli
from nnunetv2_hlfd.benchmarking.plans import kits_like_fingerprint, plan
from nnunetv2_hlfd.benchmarking.speed import torch_threads
from nnunetv2_hlfd.export import example_patch, export_student, load_student, max_deviation
from nnunetv2_hlfd.training.student import build_student

onnxruntime = pytest.importorskip("onnxruntime")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    with torch_threads(1):
        yield


def write_results_folder(root: Path, trainer_name: str = "nnUNetTrainerStudent") -> Path:
    """An nnU-Net results folder as training leaves it, with an untrained student's weights."""
    plans, dataset_json = plan("default", kits_like_fingerprint(10, (16, 64, 64)))
    model_folder = root / f"{trainer_name}__nnUNetPlans__2d"
    (model_folder / "fold_0").mkdir(parents=True)
    save_json(plans, str(model_folder / "plans.json"))
    save_json(dataset_json, str(model_folder / "dataset.json"))
    network = build_student(PlansManager(plans).get_configuration("2d"), 1, len(dataset_json["labels"]))
    torch.save({"network_weights": network.state_dict(), "trainer_name": trainer_name,
                "init_args": {"configuration": "2d"}}, model_folder / "fold_0" / "checkpoint_final.pth")
    return model_folder / "fold_0"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path, dict]:
    fold_folder = write_results_folder(tmp_path_factory.mktemp("results"))
    output = tmp_path_factory.mktemp("exported")
    return fold_folder, output, export_student(fold_folder, output)


def test_exported_logits_match_pytorch_within_tolerance(exported):
    fold_folder, output, deviations = exported
    assert (output / "model.pt").is_file() and (output / "model.onnx").is_file()
    assert len(deviations) == 4 and max(deviations.values()) <= 1, deviations


def test_onnx_model_takes_another_spatial_size(exported):
    fold_folder, output, _ = exported
    student = load_student(fold_folder)
    size = tuple(p + 2 * s for p, s in zip(student.patch_size, student.total_stride))
    session = onnxruntime.InferenceSession(str(output / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"image": example_patch(student, size).numpy()})[0]
    assert logits.shape[2:] == size
    assert max(max_deviation(student, output, size).values()) <= 1


def test_deviation_detects_a_different_model(exported, tmp_path):
    fold_folder, output, _ = exported
    student = load_student(fold_folder)
    with torch.no_grad():
        next(student.network.parameters()).add_(1.0)  # PyTorch's model no longer the exported one
    assert max(max_deviation(student, output).values()) > 1


def test_refuses_a_folder_without_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint_final.pth"):
        export_student(tmp_path / "fold_0", tmp_path / "out")


def test_refuses_a_model_that_is_not_a_student(tmp_path):
    fold_folder = write_results_folder(tmp_path, trainer_name="nnUNetTrainer")
    with pytest.raises(ValueError, match="not a student trainer"):
        export_student(fold_folder, tmp_path / "out")


def test_refuses_existing_files_without_overwrite(exported):
    fold_folder, output, _ = exported
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_student(fold_folder, output)


def test_command_reports_refusal_as_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", str(tmp_path / "fold_0"), "-o", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "does not exist" in capsys.readouterr().err
