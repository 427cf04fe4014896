"""Ctrl-C or a kill (SIGTERM) during a conversion: one line, exit status 130, and no half-written dataset (issue 22)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conversion_cases import leftovers, pause_after_a_case


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "kill"])
def test_a_stop_mid_conversion_prints_one_line_exits_130_and_leaves_nothing(kits19: Path, raw: Path, tmp_path, stop):
    marker = tmp_path / "one_case_written"
    script = (
        textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from nnunetv2_hlfd.dataset_conversion import case_jobs
        from nnunetv2_hlfd.dataset_conversion.kits19 import main
    """)
        + pause_after_a_case(marker)
        + f"sys.exit(main([{str(kits19)!r}, '--nnunet-raw', {str(raw)!r}, '-np', '1']))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), process.communicate()
    process.send_signal(stop)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr + stdout
    assert "hlfd_convert_kits19: interrupted; nothing was written" in stderr.splitlines()[-1]
    assert leftovers(raw) == []  # the partly written temporary folder is gone, and no dataset appeared
