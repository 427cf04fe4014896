"""The console commands: options, exit status, messages, and that they are installed and documented."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conversion_cases import leftovers, make_kits_case
from nnunetv2_hlfd.dataset_conversion import kits19, kits21, kits23, lits

COMMANDS = {
    "hlfd_convert_kits19": kits19,
    "hlfd_convert_kits21": kits21,
    "hlfd_convert_kits23": kits23,
    "hlfd_convert_lits": lits,
}
README = Path(__file__).resolve().parents[2] / "dataset_conversion" / "README.md"


@pytest.fixture
def kits23_folder(tmp_path: Path) -> Path:
    for case in (0, 1):
        make_kits_case(tmp_path / "kits23", case, label_values=(0, 1, 2, 3))
    return tmp_path / "kits23"


def test_cli_options_choose_id_name_and_label_layout(kits23_folder, tmp_path):
    status = kits23.main(
        [
            str(kits23_folder),
            "--nnunet-raw",
            str(tmp_path / "raw"),
            "-d",
            "77",
            "-n",
            "K23Tumour",
            "--labels",
            "tumour",
            "--cysts",
            "drop",
            "-np",
            "1",
        ]
    )
    assert status == 0
    dataset_json = json.loads((tmp_path / "raw" / "Dataset077_K23Tumour" / "dataset.json").read_text())
    assert dataset_json["labels"] == {"background": 0, "tumour": 1}


def test_cli_nnunet_raw_defaults_to_the_environment_variable(kits23_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "env_raw"))
    assert kits23.main([str(kits23_folder), "--labels", "regions", "-np", "1"]) == 0
    assert leftovers(tmp_path / "env_raw") == ["Dataset220_KiTS2023"]


def test_cli_without_nnunet_raw_explains_how_to_set_it(kits23_folder, monkeypatch, capsys):
    monkeypatch.delenv("nnUNet_raw", raising=False)
    assert kits23.main([str(kits23_folder), "--labels", "regions", "-np", "1"]) == 1
    assert "set the nnUNet_raw environment variable" in capsys.readouterr().err


def test_cli_full_labels_without_cyst_choice_fail_with_the_fix(kits23_folder, tmp_path, capsys):
    assert kits23.main([str(kits23_folder), "--nnunet-raw", str(tmp_path / "raw"), "-np", "1"]) == 1
    assert "needs an explicit --cysts: keep" in capsys.readouterr().err
    assert leftovers(tmp_path / "raw") == []


@pytest.mark.parametrize("module", [kits21, kits23])
def test_cli_tumour_labels_without_cyst_choice_fail_with_the_flag_to_add(module, kits23_folder, tmp_path, capsys):
    if module is kits21:
        for case in kits23_folder.iterdir():
            (case / "segmentation.nii.gz").rename(case / "aggregated_MAJ_seg.nii.gz")
    assert (
        module.main([str(kits23_folder), "--nnunet-raw", str(tmp_path / "raw"), "--labels", "tumour", "-np", "1"]) == 1
    )
    err = capsys.readouterr().err
    assert "--labels tumour on KiTS202" in err and "add --cysts keep, --cysts kidney or --cysts drop" in err
    assert leftovers(tmp_path / "raw") == []


def test_cli_bad_case_is_named_on_stderr(kits23_folder, tmp_path, capsys):
    (kits23_folder / "case_00001" / "segmentation.nii.gz").unlink()
    status = kits23.main([str(kits23_folder), "--nnunet-raw", str(tmp_path / "raw"), "--cysts", "drop", "-np", "1"])
    assert status == 1
    assert "case_00001: label file missing" in capsys.readouterr().err


def test_cli_check_prints_problems_and_exits_nonzero(kits23_folder, tmp_path, capsys):
    (kits23_folder / "case_00000" / "imaging.nii.gz").write_bytes(b"broken")
    status = kits23.main(
        [str(kits23_folder), "--nnunet-raw", str(tmp_path / "raw"), "--labels", "regions", "--check", "-np", "1"]
    )
    out = capsys.readouterr().out
    assert status == 1
    assert "case_00000: cannot read image file" in out and "1 problem(s) found" in out
    assert leftovers(tmp_path / "raw") == []


def test_cli_check_on_good_data_exits_zero_and_writes_nothing(kits23_folder, tmp_path, capsys):
    status = kits23.main(
        [str(kits23_folder), "--nnunet-raw", str(tmp_path / "raw"), "--labels", "regions", "--check", "-np", "1"]
    )
    assert status == 0
    assert "no problems found" in capsys.readouterr().out
    assert leftovers(tmp_path / "raw") == []


def test_cli_overwrite_replaces_the_target(kits23_folder, tmp_path):
    args = [str(kits23_folder), "--nnunet-raw", str(tmp_path / "raw"), "--labels", "regions", "-np", "1"]
    assert kits23.main(args) == 0
    assert kits23.main(args) == 1  # refused without --overwrite
    assert kits23.main(args + ["--overwrite"]) == 0
    assert leftovers(tmp_path / "raw") == ["Dataset220_KiTS2023"]


def test_cli_progress_bar_counts_cases_done_and_failed(tmp_path, capsys):
    for case, values in ((0, (0, 1, 2)), (1, (0, 1, 2, 3)), (2, (0, 1, 2))):  # KiTS19 has no label 3
        make_kits_case(tmp_path / "kits19", case, label_values=values)
    assert kits19.main([str(tmp_path / "kits19"), "--nnunet-raw", str(tmp_path / "raw"), "-np", "1"]) == 1
    progress = capsys.readouterr().err.split("error:")[0]
    assert "converting cases" in progress and "3/3" in progress and "failed=1" in progress
    assert "\r" not in progress and len(progress.splitlines()) >= 2  # not a terminal: lines, not redrawn frames


def test_parallel_conversion_reports_problems_in_case_order(tmp_path, capsys):
    for case in range(3):
        make_kits_case(tmp_path / "kits19", case, label_values=(0, 1, 2) if case == 1 else (0, 1, 2, 3))
    assert kits19.main([str(tmp_path / "kits19"), "--nnunet-raw", str(tmp_path / "raw"), "--check", "-np", "2"]) == 1
    captured = capsys.readouterr()
    assert captured.out.index("case_00000:") < captured.out.index("case_00002:")
    assert "checking cases" in captured.err and "failed=2" in captured.err


@pytest.mark.parametrize(
    "module, args",
    [
        (kits21, ["--labels", "regions"]),  # the region layout is KiTS23's
        (kits19, ["--cysts", "keep"]),  # KiTS19 and LiTS have no cysts
        (lits, ["--cysts", "drop"]),
    ],
)
def test_cli_offers_only_the_options_of_its_dataset(module, args, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        module.main([str(tmp_path), *args])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_console_command_is_installed_and_runs_main(command):
    entry_points = {e.name: e for e in importlib.metadata.entry_points(group="console_scripts")}
    assert entry_points[command].load() is COMMANDS[command].main


def test_console_command_runs_as_a_program(kits23_folder, tmp_path):
    executable = shutil.which("hlfd_convert_kits23")
    if executable is None:
        pytest.skip("console scripts are not on PATH")
    command = [executable, str(kits23_folder), "--nnunet-raw", str(tmp_path / "raw"), "--labels", "regions", "-np", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "raw" / "Dataset220_KiTS2023" / "dataset.json").is_file()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_readme_lists_the_console_command(command):
    assert f"`{command}`" in README.read_text()
