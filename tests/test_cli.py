"""`nnunetv2_hlfd`'s command line: a refusal of the user's input is one line with exit status 2; anything else
is a bug and keeps its traceback, with where to report it; and no message of the libraries that a user can do
nothing about."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnunetv2_hlfd import cli
from nnunetv2_hlfd.utilities.problems import UserFacingError

NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


@pytest.fixture
def without_nnunet_folders(monkeypatch):
    for name in NNUNET_FOLDERS:
        monkeypatch.delenv(name, raising=False)


def run_as(monkeypatch, command: str, run) -> None:
    """`command` running `run(args)` instead of its own work, with its own options."""
    monkeypatch.setitem(cli.COMMANDS, command, (cli.COMMANDS[command][0], run))


def exit_status_and_error(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    return stopped.value.code, capsys.readouterr().err


def test_a_refusal_is_one_line_with_exit_status_2(monkeypatch, capsys):
    def refuse(args):
        raise UserFacingError("--folds names fold 7, which splits_final.json lacks; choose --folds among 0-4")

    run_as(monkeypatch, "trainers-path", refuse)
    assert exit_status_and_error(["trainers-path"], capsys) == (
        2,
        "nnunetv2_hlfd trainers-path: error: --folds names fold 7, which splits_final.json lacks; choose --folds "
        "among 0-4\n",
    )


@pytest.mark.parametrize(
    "bug",
    [ValueError("cannot reshape array of size 3 into shape (2,)"), RuntimeError("expected scalar type Float")],
    ids=["ValueError", "RuntimeError"],
)
def test_any_other_error_keeps_its_traceback_and_says_where_to_report_it(monkeypatch, capsys, bug):
    def fail(args):
        raise bug

    run_as(monkeypatch, "trainers-path", fail)
    status, error = exit_status_and_error(["trainers-path"], capsys)
    assert status == 1
    assert "Traceback (most recent call last)" in error and f"{type(bug).__name__}: {bug}" in error
    assert error.endswith(
        "nnunetv2_hlfd trainers-path: unexpected error; report this as a bug of nnunetv2_hlfd, with the "
        "traceback above\n"
    )


def test_a_file_error_of_a_path_the_user_named_is_a_refusal(monkeypatch, capsys, tmp_path, without_nnunet_folders):
    def read_checkpoint(args):
        (args.fold_folder / "checkpoint_final.pth").read_bytes()

    run_as(monkeypatch, "export", read_checkpoint)
    status, error = exit_status_and_error(["export", str(tmp_path / "fold_0"), "-o", str(tmp_path / "out")], capsys)
    assert status == 2 and "Traceback" not in error
    assert error.startswith("nnunetv2_hlfd export: error: [Errno 2] No such file or directory")
    assert str(tmp_path / "fold_0" / "checkpoint_final.pth") in error and len(error.splitlines()) == 1


def test_a_file_error_in_nnunets_folders_is_a_refusal(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))

    def read_results(args):
        (tmp_path / "results" / "Dataset001_X" / "dataset.json").read_text()

    run_as(monkeypatch, "trainers-path", read_results)
    status, error = exit_status_and_error(["trainers-path"], capsys)
    assert status == 2 and "Traceback" not in error and "No such file or directory" in error


def test_a_file_error_of_a_path_the_user_did_not_name_is_a_bug(monkeypatch, capsys, tmp_path, without_nnunet_folders):
    def read_internal(args):
        (tmp_path / "cache" / "state.json").read_text()

    run_as(monkeypatch, "export", read_internal)
    status, error = exit_status_and_error(["export", str(tmp_path / "fold_0"), "-o", str(tmp_path / "out")], capsys)
    assert status == 1 and "Traceback (most recent call last)" in error and "FileNotFoundError" in error
    assert "report this as a bug of nnunetv2_hlfd" in error


def fake_dataset(root: Path) -> dict[str, str]:
    """nnU-Net's folders with a dataset and one model folder, enough for the benchmark to load the trainer
    class before it refuses the (default) reference trainer, which was not trained."""
    name = "Dataset997_Fake"
    dataset_json = {"labels": {"background": 0, "kidney": 1}, "channel_names": {"0": "CT"}, "file_ending": ".nii.gz"}
    plans = {"dataset_name": name, "plans_name": "nnUNetPlans", "configurations": {}}
    preprocessed = root / "preprocessed" / name
    model = root / "results" / name / "nnUNetTrainer__nnUNetPlans__2d"
    for folder, plans_file in ((preprocessed, "nnUNetPlans.json"), (model, "plans.json")):
        folder.mkdir(parents=True)
        (folder / "dataset.json").write_text(json.dumps(dataset_json))
        (folder / plans_file).write_text(json.dumps(plans))
    (preprocessed / "gt_segmentations").mkdir()
    return {folder: str(root / folder.removeprefix("nnUNet_")) for folder in NNUNET_FOLDERS}


def test_a_command_prints_nothing_of_the_libraries_a_user_cannot_act_on(tmp_path):
    # torch's CUDA build logs "No CUDA runtime is found" where it sees no GPU; timm, which nnU-Net's trainer
    # search imports, warns that torch.jit.interface is deprecated
    environment = os.environ | fake_dataset(tmp_path) | {"CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "nnunetv2_hlfd.cli", "benchmark", "-d", "Dataset997_Fake", "-c", "2d"]
    result = subprocess.run(
        [*command, "-tr", "nnUNetTrainer", "--no-speed"], env=environment, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "nnunetv2_hlfd benchmark: error: the reference trainer 'nnUNetTrainerStudent' is not among the benchmarked "
        "trainers (nnUNetTrainer); add it to --trainers or choose --reference"
    ]
