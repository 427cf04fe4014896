"""Leftovers of killed conversions (SIGKILL, power loss): the next run into the same target cleans them up, and
leaves alone the folders of runs that may still be going on."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conversion_cases import array, label_array, leftovers, pause_after_a_case
from nnunetv2_hlfd.dataset_conversion.conversion_error import ConversionError
from nnunetv2_hlfd.dataset_conversion.kits19 import convert_kits19

from nnunetv2_hlfd.dataset_writers import raw_dataset

TARGET = "Dataset040_KiTS2019"


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()  # reaped, so the pid no longer exists (reuse this soon is practically impossible)
    return process.pid


def leftover(raw: Path, pid: int, host: str | None = None, replaced: bool = False) -> Path:
    """A temporary folder named as a run with this pid on this host would name it, with a file in it."""
    name = f".{TARGET}.partial-{host or raw_dataset._host()}-{pid}-0123abcd" + ("-replaced" if replaced else "")
    (raw / name / "labelsTr").mkdir(parents=True)
    (raw / name / "labelsTr" / "case_00000.nii.gz").write_text("old")
    return raw / name


def test_partial_folder_of_a_killed_run_is_removed(kits19, raw, caplog):
    stale = leftover(raw, dead_pid())
    with caplog.at_level(logging.WARNING, logger=raw_dataset.__name__):
        out = convert_kits19(kits19, raw, num_processes=1)
    assert leftovers(raw) == [TARGET]
    assert (out / "dataset.json").is_file()
    assert f"removed {stale}" in caplog.text


@pytest.mark.parametrize("owner", ["this process", "another host"])
def test_partial_folder_of_a_possibly_live_run_is_left_alone(kits19, raw, caplog, owner):
    live = leftover(raw, os.getpid()) if owner == "this process" else leftover(raw, dead_pid(), host="elsewhere")
    with caplog.at_level(logging.WARNING, logger=raw_dataset.__name__):
        convert_kits19(kits19, raw, num_processes=1)
    assert leftovers(raw) == sorted([live.name, TARGET])
    assert f"left {live} alone" in caplog.text and "delete it" in caplog.text


def test_partial_folder_without_an_owner_in_its_name_is_left_alone(kits19, raw, caplog):
    (raw / f".{TARGET}.partial-0123abcd").mkdir()  # named by an older version of the converter
    with caplog.at_level(logging.WARNING, logger=raw_dataset.__name__):
        convert_kits19(kits19, raw, num_processes=1)
    assert leftovers(raw) == [f".{TARGET}.partial-0123abcd", TARGET]
    assert "it may belong to a conversion that is still running" in caplog.text


def test_dataset_hidden_by_a_killed_overwrite_is_restored_before_the_target_check(kits19, raw, caplog):
    hidden = leftover(raw, dead_pid(), replaced=True)
    with (
        caplog.at_level(logging.WARNING, logger=raw_dataset.__name__),
        pytest.raises(ConversionError, match="already exists; pass --overwrite"),
    ):
        convert_kits19(kits19, raw, num_processes=1)
    assert leftovers(raw) == [TARGET]
    assert (raw / TARGET / "labelsTr" / "case_00000.nii.gz").read_text() == "old"
    assert f"restored {raw / TARGET} from {hidden.name}" in caplog.text


def test_previous_dataset_left_after_a_completed_swap_is_removed(kits19, raw):
    (raw / TARGET).mkdir()
    leftover(raw, dead_pid(), replaced=True)
    out = convert_kits19(kits19, raw, overwrite=True, num_processes=1)
    assert leftovers(raw) == [TARGET]
    np.testing.assert_array_equal(array(out / "labelsTr" / "case_00000.nii.gz"), label_array())


def test_check_mode_leaves_leftovers_as_they_are(kits19, raw):
    stale = leftover(raw, dead_pid())
    assert convert_kits19(kits19, raw, check=True, num_processes=1) == []
    assert leftovers(raw) == [stale.name]


def test_check_mode_reports_a_dataset_the_real_run_would_restore_and_then_refuse(kits19, raw):
    hidden = leftover(raw, dead_pid(), replaced=True)
    [problem] = convert_kits19(kits19, raw, check=True, num_processes=1)
    assert hidden.name in problem and "pass --overwrite" in problem
    assert convert_kits19(kits19, raw, check=True, overwrite=True, num_processes=1) == []
    assert leftovers(raw) == [hidden.name]  # --check still touches nothing


def run_killed(
    kits19: Path, raw: Path, patch: str, *, overwrite: bool = False, kill_when: Path | None = None
) -> subprocess.CompletedProcess:
    """A real conversion in a subprocess with ``patch`` applied (to ``case_jobs`` or ``os``), ended by SIGKILL: by
    the parent once ``kill_when`` exists, or by the patch itself."""
    script = (
        textwrap.dedent("""
        import os, signal, sys, time
        from pathlib import Path
        from nnunetv2_hlfd.dataset_conversion import case_jobs
        from nnunetv2_hlfd.dataset_conversion.kits19 import convert_kits19
    """)
        + textwrap.dedent(patch)
        + textwrap.dedent(f"""
        convert_kits19({str(kits19)!r}, {str(raw)!r}, overwrite={overwrite}, num_processes=1)
    """)
    )
    process = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    if kill_when is not None:
        deadline = time.monotonic() + 60
        while not kill_when.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        process.kill()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == -9, stderr  # killed, not finished or failed
    return process


def test_run_killed_mid_conversion_is_cleaned_up_by_the_next_run(kits19, raw, tmp_path):
    marker = tmp_path / "one_case_written"
    run_killed(kits19, raw, pause_after_a_case(marker), kill_when=marker)
    [partial] = leftovers(raw)
    assert partial.startswith(f".{TARGET}.partial-")
    assert (raw / partial / "imagesTr" / "case_00000_0000.nii.gz").is_file()  # killed with a case written
    out = convert_kits19(kits19, raw, num_processes=1)
    assert leftovers(raw) == [TARGET]
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == [f"case_{i:05d}.nii.gz" for i in range(3)]


def test_overwrite_killed_between_its_renames_gets_the_old_dataset_back(kits19, raw):
    old = convert_kits19(kits19, raw, num_processes=1)
    (old / "marker.txt").write_text("previous dataset")
    patch = """
        rename = os.rename
        def rename_then_die(src, dst):
            rename(src, dst)
            if str(dst).endswith("-replaced"):  # the old dataset is hidden, the new one not yet in place
                os.kill(os.getpid(), signal.SIGKILL)
        os.rename = rename_then_die
    """
    run_killed(kits19, raw, patch, overwrite=True)
    assert TARGET not in leftovers(raw)
    assert sum(name.endswith("-replaced") for name in leftovers(raw)) == 1
    with pytest.raises(ConversionError, match="already exists"):
        convert_kits19(kits19, raw, num_processes=1)
    assert leftovers(raw) == [TARGET]
    assert (raw / TARGET / "marker.txt").read_text() == "previous dataset"
