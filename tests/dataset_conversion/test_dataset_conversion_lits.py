"""LiTS conversion (one folder, two training batches, test volumes) and agreement with MSD Task03_Liver."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conversion_cases import (
    array,
    ct_array,
    geometry,
    label_array,
    make_lits_case,
    read,
    verify_integrity_in_process,
    write_volume,
)
from nnunetv2.dataset_conversion.convert_MSD_dataset import convert_msd_dataset
from nnunetv2_hlfd.dataset_conversion.lits import convert_lits


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def two_batches(tmp_path: Path) -> Path:
    root = tmp_path / "LiTS"
    make_lits_case(root / "Training Batch 1", 0)
    make_lits_case(root / "Training Batch 1", 1)
    make_lits_case(root / "Training Batch 2", 28)
    write_volume(root / "test-volume-0.nii", ct_array(100))
    write_volume(root / "Test Data" / "test-volume-7.nii", ct_array(107))
    return root


def test_lits_single_folder_layout_is_converted(tmp_path):
    root = tmp_path / "LiTS"
    make_lits_case(root, 3)
    make_lits_case(root, 12)
    out = convert_lits(root, tmp_path / "raw", num_processes=1)
    assert out.name == "Dataset029_LiTS"
    assert names(out / "imagesTr") == ["liver_12_0000.nii.gz", "liver_3_0000.nii.gz"]
    assert names(out / "labelsTr") == ["liver_12.nii.gz", "liver_3.nii.gz"]


def test_lits_two_training_batches_are_merged(two_batches, tmp_path):
    out = convert_lits(two_batches, tmp_path / "raw", num_processes=1)
    assert names(out / "labelsTr") == ["liver_0.nii.gz", "liver_1.nii.gz", "liver_28.nii.gz"]
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 3


def test_lits_test_volumes_go_to_imagesTs(two_batches, tmp_path):
    out = convert_lits(two_batches, tmp_path / "raw", num_processes=1)
    assert names(out / "imagesTs") == ["liver_test_0_0000.nii.gz", "liver_test_7_0000.nii.gz"]
    np.testing.assert_array_equal(array(out / "imagesTs" / "liver_test_7_0000.nii.gz"), ct_array(107))


def test_lits_nii_volumes_are_gzipped_with_unchanged_geometry_and_voxels(two_batches, tmp_path):
    out = convert_lits(two_batches, tmp_path / "raw", num_processes=1)
    source, written = two_batches / "Training Batch 2" / "volume-28.nii", out / "imagesTr" / "liver_28_0000.nii.gz"
    assert geometry(read(written)) == geometry(read(source))
    np.testing.assert_array_equal(array(written), array(source))


def test_lits_accepts_nii_gz_files(tmp_path):
    root = tmp_path / "LiTS"
    make_lits_case(root, 4, ext=".nii.gz")
    out = convert_lits(root, tmp_path / "raw", num_processes=1)
    np.testing.assert_array_equal(array(out / "labelsTr" / "liver_4.nii.gz"), label_array())


def test_lits_full_labels_are_liver_and_tumour(two_batches, tmp_path):
    out = convert_lits(two_batches, tmp_path / "raw", num_processes=1)
    np.testing.assert_array_equal(array(out / "labelsTr" / "liver_1.nii.gz"), label_array())
    assert json.loads((out / "dataset.json").read_text())["labels"] == {"background": 0, "liver": 1, "tumour": 2}


def test_lits_tumour_labels_make_liver_background(two_batches, tmp_path):
    out = convert_lits(two_batches, tmp_path / "raw", labels="tumour", num_processes=1)
    np.testing.assert_array_equal(array(out / "labelsTr" / "liver_1.nii.gz"), (label_array() == 2).astype(np.uint8))


def test_lits_output_passes_nnunet_integrity_check(two_batches, tmp_path, monkeypatch):
    out = convert_lits(two_batches, tmp_path / "raw", num_processes=1)
    verify_integrity_in_process(out, monkeypatch)


def _fake_msd_task03(lits: Path, folder: Path) -> Path:
    """The same scans in MSD Task03_Liver's layout (liver_N is LiTS volume-N) with MSD's dataset.json."""
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (folder / sub).mkdir(parents=True)
    training = []
    for volume in sorted(lits.rglob("volume-*.nii")):
        n = volume.name[len("volume-") : -len(".nii")]
        write_volume(folder / "imagesTr" / f"liver_{n}.nii.gz", array(volume))
        write_volume(folder / "labelsTr" / f"liver_{n}.nii.gz", array(volume.with_name(f"segmentation-{n}.nii")))
        training.append({"image": f"./imagesTr/liver_{n}.nii.gz", "label": f"./labelsTr/liver_{n}.nii.gz"})
    (folder / "dataset.json").write_text(
        json.dumps(
            {
                "name": "Liver",
                "modality": {"0": "CT"},
                "labels": {"0": "background", "1": "liver", "2": "cancer"},
                "numTraining": len(training),
                "numTest": 0,
                "training": training,
                "test": [],
            }
        )
    )
    return folder


def test_lits_labels_agree_with_nnunet_msd_task03_liver_conversion(two_batches, tmp_path, monkeypatch):
    for test_volume in two_batches.rglob("test-volume-*"):
        test_volume.unlink()
    msd = _fake_msd_task03(two_batches, tmp_path / "Task03_Liver")
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "msd_raw"))
    for unused in ("nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.delenv(unused, raising=False)
    convert_msd_dataset(str(msd), num_processes=1)
    theirs = tmp_path / "msd_raw" / "Dataset003_Liver"
    ours = convert_lits(two_batches, tmp_path / "raw", labels="full", num_processes=1)

    their_labels = json.loads((theirs / "dataset.json").read_text())["labels"]
    our_labels = json.loads((ours / "dataset.json").read_text())["labels"]
    same_meaning = {"background": "background", "liver": "liver", "cancer": "tumour"}
    assert {same_meaning[name]: value for name, value in their_labels.items()} == our_labels
    assert names(theirs / "labelsTr") == names(ours / "labelsTr")
    for label in names(ours / "labelsTr"):
        np.testing.assert_array_equal(array(ours / "labelsTr" / label), array(theirs / "labelsTr" / label))
