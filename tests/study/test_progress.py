"""The study's progress bar: redrawn live on a terminal, only at state changes when written into a file."""

import io

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
    assert redraws_after_refreshes(io.StringIO(), tmp_path) <= 2
    assert (tmp_path / "status.json").exists()
