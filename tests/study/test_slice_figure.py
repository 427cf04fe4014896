"""The demo's comparison picture: the case and slice with the most tumour, ground truth beside predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_hlfd.study.slice_figure import pick_case_and_slice, validation_slice_figure


def write(array: np.ndarray, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))


def raw_dataset_and_models(tmp_path):
    raw = tmp_path / "Dataset001_X"
    labels = {"background": 0, "kidney": 1, "tumor": 2}
    (raw / "labelsTr").mkdir(parents=True)
    (raw / "dataset.json").write_text(json.dumps({"labels": labels, "file_ending": ".nii.gz"}))
    models = {name: tmp_path / name / "fold_0" for name in ("teacher", "student")}
    for case, tumour_slices in (("case_a", [2]), ("case_b", [1, 3])):
        label = np.zeros((5, 8, 8), dtype=np.uint8)
        label[:, 2:6, 2:6] = 1
        for z in tumour_slices:
            label[z, 3:5, 3:5] = 2
        label[3, 2:6, 3:5] = 2 if case == "case_b" else label[3, 2:6, 3:5]  # slice 3 of case_b has the most
        write(label, raw / "labelsTr" / f"{case}.nii.gz")
        write(np.full(label.shape, 40, dtype=np.int16), raw / "imagesTr" / f"{case}_0000.nii.gz")
        for folder in models.values():
            write(label, folder / "validation" / f"{case}.nii.gz")
    return raw, models


def test_the_case_and_slice_with_the_most_tumour_are_shown(tmp_path):
    raw, models = raw_dataset_and_models(tmp_path)
    path, case = validation_slice_figure(tmp_path / "slice.png", raw, models, slice_axis=0, label_value=2)
    assert case == "case_b" and path.stat().st_size > 5_000
    labels = {c: sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "labelsTr" / f"{c}.nii.gz"))) for c in ("case_b",)}
    assert pick_case_and_slice(labels, 2, slice_axis=0) == ("case_b", 3)


def test_without_a_case_every_model_predicted_it_says_so(tmp_path):
    raw, models = raw_dataset_and_models(tmp_path)
    for prediction in (models["student"] / "validation").glob("*.nii.gz"):
        prediction.unlink()
    with pytest.raises(ValueError, match=r"no validation case predicted by every model \(teacher, student\)"):
        validation_slice_figure(tmp_path / "slice.png", raw, models, slice_axis=0, label_value=2)
