"""The study's progress bar: redrawn live on a terminal; written into a file, plain lines only at state changes."""

import io
import subprocess
import sys

from study_helpers import FAKE_DATASET, fake_nnunet

from nnunetv2_hlfd.study.grid import Training
from nnunetv2_hlfd.study.progress import StudyProgress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def redraws_after_refreshes(stream, tmp_path) -> int:
    graph = [Training("nnUNetTrainer", 0), Training("nnUNetTrainerStudent", 0, depends_on=("nnUNetTrainer/fold_0",))]
    progress = StudyProgress(graph, tmp_path / "status.json", workers=1, stream=stream)
    progress.start(graph[0].key, tmp_path / "log.txt")
    drawn = stream.getvalue().count("\r")
    for _ in range(30):  # what the runner's loop does while a training runs
        progress.refresh()
    progress.close()
    return stream.getvalue().count("\r") - drawn


def test_a_terminal_sees_every_refresh(tmp_path):
    assert redraws_after_refreshes(Terminal(), tmp_path) >= 30


def test_a_log_file_gets_no_line_per_refresh_but_the_status_file_is_written(tmp_path):
    log = io.StringIO()
    assert redraws_after_refreshes(log, tmp_path) == 0
    lines = log.getvalue().splitlines()
    # the bar when the study starts and when it ends, each a line of its own; none per refresh
    assert len(lines) == 2 and all(line.startswith("study:") for line in lines) and "1 running" in lines[-1]
    assert (tmp_path / "status.json").exists()


def test_a_study_redirected_into_a_log_file_reads_as_lines(tmp_path, monkeypatch):
    """`nnunetv2_hlfd study ... > study.log 2>&1`: the bar and the notes, each on a line of its own."""
    fake_nnunet(tmp_path, monkeypatch)
    command = [sys.executable, "-m", "nnunetv2_hlfd.cli", "study", "-d", FAKE_DATASET, "-c", "2d", "-f", "0"]
    command += ["--students", "nnUNetTrainerStudent", "--no-benchmark", "--threads", "1"]
    log = tmp_path / "study.log"
    with log.open("w") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=300)
    text = log.read_text()
    assert "\r" not in text, text
    lines = text.splitlines()
    assert any(line.startswith("study:") and "2/2" in line for line in lines), text
    assert any(line.startswith("done nnUNetTrainerStudent/fold_0") for line in lines), text
