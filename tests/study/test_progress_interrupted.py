"""status.json after an interrupted study says which trainings were stopped, not "running" (issue 22)."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time

import pytest
from study_helpers import FAKE_DATASET, fake_nnunet, fold_folder

from nnunetv2_hlfd.study.grid import Training
from nnunetv2_hlfd.study.progress import StudyProgress


def test_closing_during_an_interrupt_queues_the_running_trainings_again(tmp_path):
    graph = [Training("nnUNetTrainer", 0), Training("nnUNetTrainer", 1)]
    progress = StudyProgress(graph, tmp_path / "status.json", workers=2, stream=io.StringIO())
    progress.start(graph[0].key, tmp_path / "log.txt")
    with pytest.raises(KeyboardInterrupt):
        try:
            raise KeyboardInterrupt
        finally:  # as the runner closes it
            progress.close()
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["interrupted"] is True and status["counts"]["running"] == 0 and status["counts"]["queued"] == 2
    assert "interrupted after" in status["trainings"]["nnUNetTrainer/fold_0"]["message"]
    assert status["trainings"]["nnUNetTrainer/fold_1"]["message"] == ""  # never started


def test_closing_normally_leaves_the_states_as_they_are(tmp_path):
    graph = [Training("nnUNetTrainer", 0)]
    progress = StudyProgress(graph, tmp_path / "status.json", workers=1, stream=io.StringIO())
    progress.start(graph[0].key, tmp_path / "log.txt")
    progress.close()
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["interrupted"] is False and status["counts"]["running"] == 1


def test_a_killed_study_leaves_a_status_file_without_running_trainings(tmp_path, monkeypatch):
    fake_nnunet(tmp_path, monkeypatch)
    monkeypatch.setenv("FAKE_NNUNET_HANG", "nnUNetTrainerStudent/fold_0")
    command = [sys.executable, "-m", "nnunetv2_hlfd.cli", "study", "-d", FAKE_DATASET, "-c", "2d", "-f", "0"]
    command += ["--students", "nnUNetTrainerStudent", "--no-benchmark", "--threads", "1"]
    study = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    half_way = fold_folder("nnUNetTrainerStudent", 0) / "checkpoint_latest.pth"
    deadline = time.time() + 120
    while not half_way.is_file() and time.time() < deadline and study.poll() is None:
        time.sleep(0.2)
    assert half_way.is_file(), study.communicate()[0]
    study.send_signal(signal.SIGTERM)
    output = study.communicate(timeout=120)[0]
    assert study.returncode != 0, output
    status_file = fold_folder("nnUNetTrainer", 0).parents[1] / "hlfd_study_2d" / "status.json"
    status = json.loads(status_file.read_text())
    assert status["interrupted"] is True and status["counts"]["running"] == 0, status
    student = status["trainings"]["nnUNetTrainerStudent/fold_0"]
    assert student["state"] == "queued" and "rerun the same command" in student["message"]
