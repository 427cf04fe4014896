"""A command stopped by Ctrl-C or a kill (SIGTERM): one line, exit status 130, no half-written output folder."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

# The command's work replaced by one that stages an output folder (as the benchmark and deployment do) and waits.
STAGING_COMMAND = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from nnunetv2_hlfd import cli
    from nnunetv2_hlfd.utilities import output_folder

    def stage_and_wait(args):
        with output_folder.staged(Path(sys.argv[1]) / "out", "benchmark") as staging:
            (staging / "half.csv").write_text("case,dsc\\n")
            print("staged", flush=True)
            time.sleep(120)

    cli.COMMANDS["trainers-path"] = (cli.COMMANDS["trainers-path"][0], stage_and_wait)
    cli.main(["trainers-path"])
""")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "kill"])
def test_a_stopped_command_exits_130_with_one_line_and_leaves_no_half_written_output(tmp_path, stop):
    command = [sys.executable, "-c", STAGING_COMMAND, str(tmp_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "staged", process.communicate()
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip() == "nnunetv2_hlfd trainers-path: interrupted; no output was half written"
    assert list(tmp_path.iterdir()) == []  # the staging folder was removed, no output appeared
