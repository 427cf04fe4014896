"""Helpers of the study tests: nnU-Net folders for a dataset that a stand-in nnUNetv2_train "trains"."""

from __future__ import annotations

import json
from pathlib import Path

from nnunetv2_hlfd.study.grid import StudySettings

FAKE_NNUNET = Path(__file__).resolve().parent / "fake_nnunet"
FAKE_DATASET = "Dataset900_Fake"


def fake_nnunet(tmp_path: Path, monkeypatch) -> Path:
    """nnU-Net folders holding a planned, preprocessed FAKE_DATASET; tests/study/fake_nnunet first on PATH.
    Returns the calls file the stand-in appends to."""
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(name, str(tmp_path / name))
    preprocessed = tmp_path / "nnUNet_preprocessed" / FAKE_DATASET
    (preprocessed / "nnUNetPlans_2d").mkdir(parents=True)
    (preprocessed / "nnUNetPlans_2d" / "case_000.b2nd").write_text("data")
    plans = {"configurations": {"2d": {"data_identifier": "nnUNetPlans_2d"}}}
    (preprocessed / "nnUNetPlans.json").write_text(json.dumps(plans))
    labels = {"background": 0, "kidney": 1, "tumor": 2}
    (preprocessed / "dataset.json").write_text(json.dumps({"labels": labels, "file_ending": ".nii.gz"}))
    monkeypatch.setenv("PATH", f"{FAKE_NNUNET}:{__import__('os').environ['PATH']}")
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_NNUNET_CALLS", str(calls))
    return calls


def fake_settings(**changes) -> StudySettings:
    """Teacher and two students on two folds, one CPU core per worker, no benchmark (nothing real to score)."""
    base = {
        "dataset": FAKE_DATASET,
        "configuration": "2d",
        "students": ("nnUNetTrainerStudent", "nnUNetTrainerHLFD"),
        "folds": (0, 1),
        "workers": 1,
        "threads": 1,
        "benchmark": False,
    }
    return StudySettings(**base | changes)


def read_calls(calls: Path) -> list[dict]:
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.is_file() else []


def fold_folder(trainer: str, fold: int) -> Path:
    import os

    return Path(os.environ["nnUNet_results"]) / FAKE_DATASET / f"{trainer}__nnUNetPlans__2d" / f"fold_{fold}"


def finish(trainer: str, fold: int) -> None:
    """What a finished nnU-Net training leaves behind."""
    folder = fold_folder(trainer, fold)
    (folder / "validation").mkdir(parents=True)
    (folder / "checkpoint_final.pth").write_text("final")
    (folder / "validation" / "summary.json").write_text("{}")
