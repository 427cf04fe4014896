"""The package's one progress bar: redrawn in place on a terminal, plain lines in a file or pipe (issue 27)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

from nnunetv2_hlfd.utilities.progress_bar import LineProgress, progress_bar

REPO = Path(__file__).resolve().parents[2]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_tqdms_bar_redrawn_in_place():
    stream = Terminal()
    bar = progress_bar(range(5), file=stream, desc="cases", mininterval=0)
    assert not isinstance(bar, LineProgress)
    list(bar)
    assert stream.getvalue().count("\r") >= 5


def test_a_file_gets_one_line_per_update_and_no_carriage_return():
    stream = io.StringIO()
    bar = progress_bar(range(5), file=stream, desc="cases", mininterval=0, line_every_s=0, postfix={"failed": 0})
    for i in bar:
        if i == 2:
            bar.set_postfix(failed=1)
            bar.write("case_00002: a problem", file=stream)
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    bars = [line for line in lines if line.startswith("cases:")]
    # the start, each of the 5 cases, and the new postfix; the refresh after the write repeats nothing
    assert [re.search(r" (\d)/5 ", line).group(1) for line in bars] == ["0", "1", "2", "2", "3", "4", "5"]
    assert "case_00002: a problem" in lines and bars[-1].startswith("cases: 100% 5/5") and "failed=1" in bars[-1]


def test_lines_come_at_most_once_per_interval_and_the_last_state_always():
    stream = io.StringIO()
    with progress_bar(total=100, file=stream, desc="scoring", mininterval=0, line_every_s=3600) as bar:
        for _ in range(100):
            bar.update()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and " 0/100 " in lines[0] and " 100/100 " in lines[1]


def test_a_bar_that_is_not_left_behind_still_ends_in_a_line_not_a_clearing_frame():
    stream = io.StringIO()
    with progress_bar(total=4, file=stream, desc="export", leave=False, line_every_s=3600) as bar:
        bar.update(4)
    text = stream.getvalue()
    assert "\r" not in text and text.endswith("\n") and text.splitlines()[-1].startswith("export: 100% 4/4")


def test_a_disabled_bar_writes_nothing():
    stream = io.StringIO()
    bar = progress_bar(total=3, file=stream, desc="study", disable=True)
    bar.update(3)
    bar.close()
    assert stream.getvalue() == ""


def test_stderr_redirected_into_a_real_file_reads_as_lines(tmp_path):
    script = (
        "from nnunetv2_hlfd.utilities.progress_bar import progress_bar\n"
        "for _ in progress_bar(range(4), desc='cases', mininterval=0, line_every_s=0): pass\n"
    )
    log = tmp_path / "run.log"
    with log.open("w") as stderr:
        subprocess.run([sys.executable, "-c", script], stderr=stderr, check=True, cwd=tmp_path, timeout=120)
    text = log.read_text()
    assert "\r" not in text and len(text.splitlines()) == 5  # 0/4 .. 4/4


def test_no_module_makes_a_bar_of_its_own():
    """Every bar goes through progress_bar, so none writes carriage-return frames into a log."""
    sources = [*REPO.joinpath("nnunetv2_hlfd").rglob("*.py"), *REPO.joinpath("dataset_conversion").rglob("*.py")]
    sources += list(REPO.joinpath("trainers").rglob("*.py"))
    own = [
        str(path.relative_to(REPO))
        for path in sources
        if path.name != "progress_bar.py" and re.search(r"^\s*(from tqdm|import tqdm)", path.read_text(), re.M)
    ]
    assert own == []
