"""The student exported to TorchScript and ONNX gives PyTorch's logits, at any valid size."""

import sys
from pathlib import Path

import pytest
import torch
from batchgenerators.utilities.file_and_folder_operations import save_json
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_hlfd import cli
from nnunetv2_hlfd.models import export
from nnunetv2_hlfd.models.export import example_patch, export_student, load_student, max_deviation
from nnunetv2_hlfd.models.model_plans import ModelPlans
from nnunetv2_hlfd.speed.offline_plans import kits_like_fingerprint, plan
from nnunetv2_hlfd.training.student_mobile import InvertedResidualUNet
from nnunetv2_hlfd.utilities.trainer_search import find_trainer_class

onnxruntime = pytest.importorskip("onnxruntime")


pytestmark = pytest.mark.usefixtures("one_thread")


def write_results_folder(root: Path, trainer_name: str = "nnUNetTrainerStudent", configuration: str = "2d") -> Path:
    """An nnU-Net results folder as training leaves it, with the untrained weights of the trainer's network."""
    plans, dataset_json = plan("default", kits_like_fingerprint(10, (16, 64, 64)))
    model_folder = root / f"{trainer_name}__nnUNetPlans__{configuration}"
    (model_folder / "fold_0").mkdir(parents=True)
    save_json(plans, str(model_folder / "plans.json"))
    save_json(dataset_json, str(model_folder / "dataset.json"))
    manager = PlansManager(plans)
    model_plans = ModelPlans(manager, manager.get_configuration(configuration), dataset_json)
    network = model_plans.build_network(find_trainer_class(trainer_name))
    torch.save(
        {
            "network_weights": network.state_dict(),
            "trainer_name": trainer_name,
            "init_args": {"configuration": configuration},
        },
        model_folder / "fold_0" / "checkpoint_final.pth",
    )
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


def test_a_checkpoint_of_an_unknown_trainer_is_one_line_naming_the_trainer(tmp_path, capsys):
    fold_folder = write_results_folder(tmp_path)
    checkpoint = torch.load(fold_folder / "checkpoint_final.pth", weights_only=True)
    torch.save(checkpoint | {"trainer_name": "nnUNetTrainerNoSuchStudent"}, fold_folder / "checkpoint_final.pth")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", str(fold_folder), "-o", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "no trainer class named 'nnUNetTrainerNoSuchStudent'" in error and "nnUNet_extTrainer" in error
    assert "Traceback" not in error and not (tmp_path / "out").exists()


def test_refuses_existing_files_without_overwrite(exported):
    fold_folder, output, _ = exported
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_student(fold_folder, output)


def test_command_reports_refusal_as_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", str(tmp_path / "fold_0"), "-o", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "does not exist" in capsys.readouterr().err


def test_without_the_export_extra_the_command_names_the_extra_to_install(tmp_path, monkeypatch, capsys):
    fold_folder = write_results_folder(tmp_path)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed: find_spec gives None
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", str(fold_folder), "-o", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "onnxruntime" in error and 'pip install "nnunetv2_hlfd[export]"' in error
    assert not (tmp_path / "out").exists()


def test_a_failed_export_leaves_no_file_and_the_rerun_needs_no_overwrite(tmp_path, monkeypatch):
    fold_folder, output = write_results_folder(tmp_path), tmp_path / "out"

    def failing_onnx_export(student, path):  # after model.pt is written, as a crash of the ONNX exporter
        raise RuntimeError("ONNX exporter failed")

    monkeypatch.setattr(export, "export_onnx", failing_onnx_export)
    with pytest.raises(RuntimeError, match="ONNX exporter failed"):
        export_student(fold_folder, output)
    assert not output.exists()
    monkeypatch.undo()
    export_student(fold_folder, output)
    assert sorted(p.name for p in output.iterdir()) == ["model.onnx", "model.pt"]


def test_an_export_failing_its_check_keeps_the_previous_files(exported, monkeypatch):
    fold_folder, output, _ = exported
    before = {name: (output / name).read_bytes() for name in ("model.pt", "model.onnx")}
    monkeypatch.setattr(export, "max_deviation", lambda student, folder, size: {"model.pt": 2.0, "model.onnx": 0.5})
    with pytest.raises(RuntimeError, match="nothing was written"):
        export_student(fold_folder, output, overwrite=True)
    assert {name: (output / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in output.iterdir()) == ["model.onnx", "model.pt"]


def test_export_shows_each_stage_as_it_runs(exported, tmp_path, capsys):
    export_student(exported[0], tmp_path / "again")
    shown = capsys.readouterr().err
    for stage in ("TorchScript", "ONNX", "check at the plans' patch", "check at the second size"):
        assert stage in shown, (stage, shown)


@pytest.mark.parametrize("configuration", ["2d", "3d_fullres"])
def test_the_inverted_residual_student_exports_with_pytorchs_logits(tmp_path, configuration):
    """Its depthwise and depthwise-transposed convolutions in TorchScript and ONNX, at the patch and a second size."""
    fold_folder = write_results_folder(tmp_path / "results", "nnUNetTrainerHLFDMobile", configuration)
    assert isinstance(load_student(fold_folder).network, InvertedResidualUNet)
    deviations = export_student(fold_folder, tmp_path / "exported")
    assert len(deviations) == 4 and max(deviations.values()) <= 1, deviations
    onnx = pytest.importorskip("onnx")
    grouped = [
        node.op_type
        for node in onnx.load(str(tmp_path / "exported" / "model.onnx")).graph.node
        if any(a.name == "group" and a.i > 1 for a in node.attribute)
    ]
    assert {"Conv", "ConvTranspose"} <= set(grouped)
