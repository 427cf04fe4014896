"""KiTS19, KiTS21 and KiTS23 conversion on tiny generated cases."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nnunetv2
import numpy as np
import pytest
from conversion_cases import (
    GEOMETRY,
    array,
    geometry,
    label_array,
    make_kits_case,
    read,
    verify_integrity_in_process,
    write_volume,
)
from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
from nnunetv2_hlfd.dataset_conversion.conversion_error import ConversionError
from nnunetv2_hlfd.dataset_conversion.kits19 import convert_kits19
from nnunetv2_hlfd.dataset_conversion.kits21 import convert_kits21
from nnunetv2_hlfd.dataset_conversion.kits23 import convert_kits23


@pytest.fixture
def kits19(tmp_path: Path) -> Path:
    root = tmp_path / "kits19" / "data"
    make_kits_case(root, 0)
    make_kits_case(root, 1)
    make_kits_case(root, 210, label_name=None)  # KiTS19 test case: image only
    return root


def kits_with_cysts(root: Path, label_name: str) -> Path:
    for case in (0, 1):
        make_kits_case(root, case, label_name=label_name, label_values=(0, 1, 2, 3))
    return root


def test_kits19_labelled_cases_go_to_imagesTr_and_labelsTr(kits19, tmp_path):
    out = convert_kits19(kits19, tmp_path / "raw", num_processes=1)
    assert out == tmp_path / "raw" / "Dataset040_KiTS2019"
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == ["case_00000_0000.nii.gz", "case_00001_0000.nii.gz"]
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == ["case_00000.nii.gz", "case_00001.nii.gz"]


def test_kits19_image_only_cases_go_to_imagesTs(kits19, tmp_path):
    out = convert_kits19(kits19, tmp_path / "raw", num_processes=1)
    assert [p.name for p in (out / "imagesTs").iterdir()] == ["case_00210_0000.nii.gz"]
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 2


def test_kits19_output_passes_nnunet_integrity_check(kits19, tmp_path):
    out = convert_kits19(kits19, tmp_path / "raw", num_processes=1)
    # the real thing once, worker process included; the other datasets run the same checks in-process
    verify_dataset_integrity(str(out), num_processes=1)  # raises on any problem


def test_images_keep_geometry_and_voxels_exactly(kits19, tmp_path):
    out = convert_kits19(kits19, tmp_path / "raw", num_processes=1)
    source, written = read(kits19 / "case_00001" / "imaging.nii.gz"), read(out / "imagesTr" / "case_00001_0000.nii.gz")
    assert geometry(written) == geometry(source)
    # and that grid is the non-trivial one the fixture wrote (NIfTI stores it as float32)
    for written_value, expected in zip(geometry(written)[1:], GEOMETRY.values()):
        np.testing.assert_allclose(written_value, expected, rtol=1e-6)
    np.testing.assert_array_equal(
        array(out / "imagesTr" / "case_00001_0000.nii.gz"), array(kits19 / "case_00001" / "imaging.nii.gz")
    )


def test_dataset_folder_gets_ordinary_permissions(kits19, tmp_path):
    out = convert_kits19(kits19, tmp_path / "raw", num_processes=1)
    (tmp_path / "raw" / "plain").mkdir()  # what the user's umask gives a new folder
    assert out.stat().st_mode == (tmp_path / "raw" / "plain").stat().st_mode


def test_labels_are_uint8_on_the_image_grid(kits19, tmp_path):
    out = convert_kits19(kits19, tmp_path / "raw", num_processes=1)
    label = read(out / "labelsTr" / "case_00000.nii.gz")
    assert label.GetPixelIDValue() == 1  # sitkUInt8
    assert geometry(label) == geometry(read(out / "imagesTr" / "case_00000_0000.nii.gz"))


def test_kits19_full_labels_are_unchanged(kits19, tmp_path):
    out = convert_kits19(kits19, tmp_path / "raw", num_processes=1)
    np.testing.assert_array_equal(array(out / "labelsTr" / "case_00000.nii.gz"), label_array((0, 1, 2)))
    assert json.loads((out / "dataset.json").read_text())["labels"] == {"background": 0, "kidney": 1, "tumour": 2}


def test_kits19_tumour_labels_keep_only_tumour_as_one(kits19, tmp_path):
    out = convert_kits19(kits19, tmp_path / "raw", labels="tumour", num_processes=1)
    source = label_array((0, 1, 2))
    np.testing.assert_array_equal(array(out / "labelsTr" / "case_00000.nii.gz"), (source == 2).astype(np.uint8))
    assert json.loads((out / "dataset.json").read_text())["labels"] == {"background": 0, "tumour": 1}


def test_dataset_json_has_required_and_descriptive_fields(kits19, tmp_path):
    out = convert_kits19(kits19, tmp_path / "raw", dataset_id=64, dataset_name="KiTS19Test", num_processes=1)
    dataset_json = json.loads((out / "dataset.json").read_text())
    assert out.name == "Dataset064_KiTS19Test"
    assert dataset_json["channel_names"] == {"0": "CT"}
    assert dataset_json["file_ending"] == ".nii.gz"
    assert dataset_json["numTraining"] == 2
    assert "CC BY-NC-SA" in dataset_json["licence"]
    assert "kits19" in dataset_json["reference"]


def test_uncompressed_nii_input_is_written_as_nii_gz(tmp_path):
    root = tmp_path / "kits19"
    make_kits_case(root, 0, image_ext=".nii", label_name="segmentation.nii")
    out = convert_kits19(root, tmp_path / "raw", num_processes=1)
    written = out / "imagesTr" / "case_00000_0000.nii.gz"
    assert written.read_bytes()[:2] == b"\x1f\x8b"  # gzip magic
    assert geometry(read(written)) == geometry(read(root / "case_00000" / "imaging.nii"))
    np.testing.assert_array_equal(array(written), array(root / "case_00000" / "imaging.nii"))


@pytest.mark.parametrize(
    "convert, label_name", [(convert_kits21, "aggregated_MAJ_seg.nii.gz"), (convert_kits23, "segmentation.nii.gz")]
)
@pytest.mark.parametrize("labels", ["full", "tumour"])
def test_kits_with_cysts_require_an_explicit_cyst_choice(tmp_path, convert, label_name, labels):
    root = kits_with_cysts(tmp_path / "kits", label_name)
    with pytest.raises(ConversionError, match=f"--labels {labels} on KiTS202[13] needs an explicit --cysts: keep"):
        convert(root, tmp_path / "raw", labels=labels, num_processes=1)
    assert not (tmp_path / "raw").exists()


def test_kits23_region_layout_needs_no_cyst_choice(tmp_path):
    root = kits_with_cysts(tmp_path / "kits23", "segmentation.nii.gz")
    implicit = convert_kits23(root, tmp_path / "raw", labels="regions", num_processes=1)
    explicit = convert_kits23(root, tmp_path / "raw2", labels="regions", cysts="keep", num_processes=1)
    for label in ("case_00000.nii.gz", "case_00001.nii.gz"):
        np.testing.assert_array_equal(array(implicit / "labelsTr" / label), array(explicit / "labelsTr" / label))


@pytest.mark.parametrize(
    "cysts, cyst_value, labels",
    [
        ("keep", 3, {"background": 0, "kidney": 1, "tumour": 2, "cyst": 3}),
        ("kidney", 1, {"background": 0, "kidney": 1, "tumour": 2}),
        ("drop", 0, {"background": 0, "kidney": 1, "tumour": 2}),
    ],
)
def test_kits21_full_labels_handle_cysts_as_chosen(tmp_path, cysts, cyst_value, labels):
    root = kits_with_cysts(tmp_path / "kits21", "aggregated_MAJ_seg.nii.gz")
    out = convert_kits21(root, tmp_path / "raw", labels="full", cysts=cysts, num_processes=1)
    source = label_array((0, 1, 2, 3))
    expected = np.where(source == 3, cyst_value, source)
    np.testing.assert_array_equal(array(out / "labelsTr" / "case_00000.nii.gz"), expected)
    assert json.loads((out / "dataset.json").read_text())["labels"] == labels


@pytest.mark.parametrize("cysts", ["kidney", "drop"])
def test_kits21_tumour_labels_make_cysts_background_unless_kept(tmp_path, cysts):
    root = kits_with_cysts(tmp_path / "kits21", "aggregated_MAJ_seg.nii.gz")
    out = convert_kits21(root, tmp_path / "raw", labels="tumour", cysts=cysts, num_processes=1)
    expected = (label_array((0, 1, 2, 3)) == 2).astype(np.uint8)
    np.testing.assert_array_equal(array(out / "labelsTr" / "case_00001.nii.gz"), expected)


def test_kits21_tumour_labels_keep_cysts_as_two_when_asked(tmp_path):
    root = kits_with_cysts(tmp_path / "kits21", "aggregated_MAJ_seg.nii.gz")
    out = convert_kits21(root, tmp_path / "raw", labels="tumour", cysts="keep", num_processes=1)
    source = label_array((0, 1, 2, 3))
    np.testing.assert_array_equal(
        array(out / "labelsTr" / "case_00001.nii.gz"), np.select([source == 2, source == 3], [1, 2], 0)
    )
    assert json.loads((out / "dataset.json").read_text())["labels"] == {"background": 0, "tumour": 1, "cyst": 2}


def test_kits21_reads_the_majority_vote_label_not_the_other_aggregates(tmp_path):
    root = kits_with_cysts(tmp_path / "kits21", "aggregated_MAJ_seg.nii.gz")
    make_kits_case(root, 0, label_name="aggregated_OR_seg.nii.gz", label=np.ones((8, 32, 32), np.uint8))
    out = convert_kits21(root, tmp_path / "raw", labels="full", cysts="keep", num_processes=1)
    np.testing.assert_array_equal(array(out / "labelsTr" / "case_00000.nii.gz"), label_array((0, 1, 2, 3)))


def test_kits21_output_passes_nnunet_integrity_check(tmp_path, monkeypatch):
    root = kits_with_cysts(tmp_path / "kits21", "aggregated_MAJ_seg.nii.gz")
    out = convert_kits21(root, tmp_path / "raw", labels="full", cysts="keep", num_processes=1)
    verify_integrity_in_process(out, monkeypatch)


def _nnunet_kits2023_dataset_json(kits23: Path, raw: Path, monkeypatch) -> dict:
    """Run nnU-Net's own Dataset220_KiTS2023 conversion (not importable by name: it starts with a digit)."""
    script = Path(nnunetv2.__file__).parent / "dataset_conversion" / "Dataset220_KiTS2023.py"
    spec = importlib.util.spec_from_file_location("nnunet_dataset220", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("nnUNet_raw", str(raw))  # nnunetv2.paths reads the variable at each use
    module.convert_kits2023(str(kits23), 220)
    return json.loads((raw / "Dataset220_KiTS2023" / "dataset.json").read_text())


def test_kits23_region_layout_matches_nnunet_dataset220(tmp_path, monkeypatch):
    root = kits_with_cysts(tmp_path / "kits23", "segmentation.nii.gz")
    ours = convert_kits23(root, tmp_path / "raw", labels="regions", num_processes=1)
    theirs = _nnunet_kits2023_dataset_json(root, tmp_path / "nnunet_raw", monkeypatch)
    ours_json = json.loads((ours / "dataset.json").read_text())
    assert ours_json["labels"] == theirs["labels"]
    assert ours_json["regions_class_order"] == theirs["regions_class_order"]
    their_label = tmp_path / "nnunet_raw" / "Dataset220_KiTS2023" / "labelsTr" / "case_00000.nii.gz"
    np.testing.assert_array_equal(array(ours / "labelsTr" / "case_00000.nii.gz"), array(their_label))


def test_kits23_region_layout_passes_nnunet_integrity_check(tmp_path, monkeypatch):
    root = kits_with_cysts(tmp_path / "kits23", "segmentation.nii.gz")
    out = convert_kits23(root, tmp_path / "raw", labels="regions", num_processes=1)
    verify_integrity_in_process(out, monkeypatch)


def test_kits23_label_layout_keeps_kidney_tumour_and_cyst(tmp_path):
    root = kits_with_cysts(tmp_path / "kits23", "segmentation.nii.gz")
    out = convert_kits23(root, tmp_path / "raw", labels="full", cysts="keep", num_processes=1)
    np.testing.assert_array_equal(array(out / "labelsTr" / "case_00001.nii.gz"), label_array((0, 1, 2, 3)))
    dataset_json = json.loads((out / "dataset.json").read_text())
    assert dataset_json["labels"] == {"background": 0, "kidney": 1, "tumour": 2, "cyst": 3}
    assert "regions_class_order" not in dataset_json


def test_regions_layout_refuses_to_drop_cysts(tmp_path):
    root = kits_with_cysts(tmp_path / "kits23", "segmentation.nii.gz")
    with pytest.raises(ConversionError, match="region layout keeps cysts"):
        convert_kits23(root, tmp_path / "raw", labels="regions", cysts="drop", num_processes=1)


def test_regions_layout_is_only_offered_for_kits23(kits19, tmp_path):
    with pytest.raises(ConversionError, match="not offered for KiTS2019"):
        convert_kits19(kits19, tmp_path / "raw", labels="regions", num_processes=1)


def test_in_process_integrity_check_rejects_a_broken_dataset(kits19, tmp_path, monkeypatch):
    # guards the helper above: it must fail where nnU-Net's check fails
    out = convert_kits19(kits19, tmp_path / "raw", num_processes=1)
    write_volume(out / "labelsTr" / "case_00000.nii.gz", label_array((0, 1, 2, 7)))
    with pytest.raises(RuntimeError, match="unexpected labels"):
        verify_integrity_in_process(out, monkeypatch)
