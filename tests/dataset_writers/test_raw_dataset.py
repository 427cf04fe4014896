"""Atomic writing of raw dataset folders (the one call the writers use), on its own; the converters' use of the
same mechanism, killed runs included, is tested in tests/dataset_conversion/test_dataset_conversion_recovery.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nnunetv2_hlfd.dataset_writers import raw_dataset
from nnunetv2_hlfd.dataset_writers.raw_dataset import RawDatasetError, write_raw_dataset


def write_marker(text: str):
    def fill(folder: Path, target: Path) -> None:
        (folder / "imagesTr").mkdir()
        (folder / "marker.txt").write_text(f"{text} for {target.name}")

    return fill


def test_the_dataset_is_written_under_its_nnunet_name(tmp_path):
    target = write_raw_dataset(tmp_path, 42, "Toy", write_marker("new"))
    assert target == tmp_path / "Dataset042_Toy"
    assert (target / "marker.txt").read_text() == "new for Dataset042_Toy"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset042_Toy"]


def test_a_failing_fill_leaves_nothing_behind(tmp_path):
    def fill(folder: Path, target: Path) -> None:
        (folder / "half.txt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_raw_dataset(tmp_path, 42, "Toy", fill)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_dataset_is_refused_unless_overwrite(tmp_path):
    write_raw_dataset(tmp_path, 42, "Toy", write_marker("old"))
    with pytest.raises(RawDatasetError, match="already exists; pass --overwrite \\(overwrite=True\\)"):
        write_raw_dataset(tmp_path, 42, "Toy", write_marker("new"))
    assert (tmp_path / "Dataset042_Toy" / "marker.txt").read_text() == "old for Dataset042_Toy"
    write_raw_dataset(tmp_path, 42, "Toy", write_marker("new"), overwrite=True)
    assert (tmp_path / "Dataset042_Toy" / "marker.txt").read_text() == "new for Dataset042_Toy"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset042_Toy"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_id_used_by_another_dataset_is_refused(tmp_path, overwrite):
    (tmp_path / "Dataset042_Other").mkdir()
    with pytest.raises(RawDatasetError, match="dataset id 042 is already used by Dataset042_Other"):
        write_raw_dataset(tmp_path, 42, "Toy", write_marker("new"), overwrite=overwrite)
    assert [p.name for p in tmp_path.iterdir()] == ["Dataset042_Other"]


@pytest.mark.parametrize(
    "dataset_id, dataset_name, message",
    [
        (0, "Toy", "out of range"),
        (1000, "Toy", "out of range"),
        (True, "Toy", "out of range"),
        (42, "has space", "must be letters"),
    ],
)
def test_invalid_ids_and_names_are_refused_as_value_errors(tmp_path, dataset_id, dataset_name, message):
    with pytest.raises(ValueError, match=message):
        write_raw_dataset(tmp_path / "raw", dataset_id, dataset_name, write_marker("new"))
    assert not (tmp_path / "raw").exists()


def test_the_leftover_of_a_killed_run_is_removed_by_the_next_write(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()  # a pid that has ended
    leftover = tmp_path / f".Dataset042_Toy.partial-{raw_dataset._host()}-{process.pid}-0123abcd"
    leftover.mkdir()
    write_raw_dataset(tmp_path, 42, "Toy", write_marker("new"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset042_Toy"]


def test_a_target_made_by_another_run_meanwhile_is_not_replaced_without_overwrite(tmp_path):
    def fill(folder: Path, target: Path) -> None:
        target.mkdir()  # as if a concurrent run finished first
        (folder / "marker.txt").write_text("new")

    with pytest.raises(RawDatasetError, match="already exists"):
        write_raw_dataset(tmp_path, 42, "Toy", fill)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset042_Toy"]
    assert list((tmp_path / "Dataset042_Toy").iterdir()) == []
