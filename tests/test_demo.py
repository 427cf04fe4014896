"""The demo: its folder handling (nothing of the user's is deleted, a failed demo can be rerun) and one
real end-to-end run at a tiny size (a one-fold study with real nnUNetv2_train and the benchmark)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from figure_checks import coloured_fraction, grid_cells, painted_fraction, read_png

from nnunetv2_hlfd import demo
from nnunetv2_hlfd.demo import DemoSettings, prepare_workdir, run_demo
from nnunetv2_hlfd.utilities.output_folder import OutputFolderError, read_marker


def users_folder(tmp_path):
    """A folder with a user's own work in it: a thesis and an nnU-Net raw dataset."""
    folder = tmp_path / "work"
    (folder / "nnUNet_raw" / "Dataset001_Real" / "imagesTr").mkdir(parents=True)
    (folder / "nnUNet_raw" / "Dataset001_Real" / "dataset.json").write_text("{}")
    (folder / "thesis.tex").write_text(r"\documentclass{book}")
    return folder


def test_overwrite_refuses_a_folder_the_demo_did_not_make_naming_it(tmp_path):
    folder = users_folder(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "nnunetv2_hlfd.cli", "demo", "--workdir", str(folder), "--overwrite"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert f"{folder} is not empty and was not written by nnunetv2_hlfd demo" in result.stderr
    assert "not even with --overwrite" in result.stderr and "Traceback" not in result.stderr
    assert (folder / "thesis.tex").read_text() == r"\documentclass{book}"
    assert (folder / "nnUNet_raw" / "Dataset001_Real" / "dataset.json").is_file()


def test_overwrite_replaces_a_demo_folder(tmp_path):
    settings = DemoSettings(workdir=tmp_path / "demo")
    prepare_workdir(settings)
    (settings.workdir / "nnUNet_results" / "stale.txt").write_text("from an earlier demo")
    prepare_workdir(DemoSettings(workdir=settings.workdir, num_cases=4, overwrite=True))
    assert not (settings.workdir / "nnUNet_results" / "stale.txt").exists()
    assert read_marker(settings.workdir, "demo")["num_cases"] == 4


def test_a_failed_demo_can_be_rerun_in_its_folder(tmp_path, monkeypatch):
    settings = DemoSettings(workdir=tmp_path / "demo", num_cases=2, shape=(8, 32, 32))

    def fail(*args, **kwargs):
        raise RuntimeError("planning failed")

    monkeypatch.setattr("nnunetv2_hlfd.study.runner.run_study", fail)
    with pytest.raises(RuntimeError, match="planning failed"):
        run_demo(settings)
    # the rerun of the same demo accepts its own folder (and keeps the dataset it already made)
    dataset = settings.workdir / "nnUNet_raw" / "Dataset990_SyntheticKidney"
    made = (dataset / "dataset.json").stat().st_mtime_ns
    with pytest.raises(RuntimeError, match="planning failed"):
        run_demo(settings)
    assert (dataset / "dataset.json").stat().st_mtime_ns == made


def test_a_demo_folder_with_other_settings_needs_overwrite(tmp_path):
    prepare_workdir(DemoSettings(workdir=tmp_path / "demo"))
    with pytest.raises(OutputFolderError, match=r"holds a demo with other settings.*--overwrite"):
        prepare_workdir(DemoSettings(workdir=tmp_path / "demo", num_cases=4))


def test_a_file_as_workdir_is_refused(tmp_path):
    (tmp_path / "file").write_text("mine")
    with pytest.raises(OutputFolderError, match="is not a folder"):
        prepare_workdir(DemoSettings(workdir=tmp_path / "file", overwrite=True))
    assert (tmp_path / "file").read_text() == "mine"


@pytest.mark.integration
def test_demo_trains_three_models_and_prints_dice_parameters_and_time(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("nnUNet_compile", "0")
    # As after the session's planning (conftest): nnU-Net's planner fails on 0, so the study must drop it there.
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    settings = DemoSettings(
        workdir=tmp_path / "demo",
        num_cases=5,
        shape=(12, 48, 48),
        epochs=1,
        iterations_per_epoch=2,
        teacher_epochs=2,
    )
    table = run_demo(settings)
    # the teacher on its own schedule, every training seeded with the demo's seed
    assert list(table["trainer"]) == [
        "nnUNetTrainer_2epochs_2iterations_seed0",
        *[f"{name}_1epochs_2iterations_seed0" for name in demo.STUDENTS],
    ]
    assert {"dsc_kidney", "dsc_tumor", "parameters", "volume_latency_s_cpu"} <= set(table.columns)
    assert table["parameters"].iloc[0] > table["parameters"].iloc[1]  # the teacher is the larger model
    assert (table["volume_latency_s_cpu"] > 0).all()
    printed = capsys.readouterr().out
    assert "| DSC kidney | DSC tumor |" in printed and "| parameters |" in printed and "s per case (cpu)" in printed
    assert "both empty counting as 1; kidney n = " in printed
    study_md = (settings.workdir / "study" / "study.md").read_text()
    assert "## Results" in study_md and "nnUNetTrainerHLFD_1epochs_2iterations_seed0" in study_md
    # the pictures: a validation slice of every model beside the ground truth, and the learning curves
    for picture in ("validation_slice.png", "learning_curves.png"):
        assert str(settings.workdir / "study" / picture) in printed
    slice_png = read_png(settings.workdir / "study" / "validation_slice.png")
    assert slice_png.shape[:2] == (432, 1800)  # CT, ground truth and three models, 3 x 3.6 inches each at 120 dpi
    ct, truth, *models = grid_cells(slice_png, 5)
    # the CT under every panel (a blank one is white but for its title), the labels in colour on the truth
    assert all(painted_fraction(cell) > 0.1 for cell in (ct, truth, *models)) and coloured_fraction(truth) > 0.001
    # two classes' panels, 6 x 4.6 inches each; what they plot is checked in tests/study/test_run_report.py
    assert read_png(settings.workdir / "study" / "learning_curves.png").shape[:2] == (552, 1440)
    assert "## Runs" in study_md
