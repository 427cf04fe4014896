"""The demo's comparison picture: the case and slice with the most tumour, ground truth beside predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from figure_checks import axes_pixels, coloured_fraction, painted_fraction, pixel_size, read_png

from nnunetv2_hlfd.study.slice_figure import DPI, draw_validation_slice, pick_case_and_slice, validation_slice_figure


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
        # a ramp across the soft-tissue window, so that the CT panel shows grey levels, not one flat colour
        ramp = np.broadcast_to(np.linspace(-150, 230, label.shape[-1]), label.shape).astype(np.int16)
        write(ramp, raw / "imagesTr" / f"{case}_0000.nii.gz")
        for folder in models.values():
            write(label, folder / "validation" / f"{case}.nii.gz")
    return raw, models


def test_the_case_and_slice_with_the_most_tumour_are_shown(tmp_path):
    raw, models = raw_dataset_and_models(tmp_path)
    figure, case = draw_validation_slice(raw, models, slice_axis=0, label_value=2)
    assert case == "case_b" and figure.get_suptitle() == "validation case case_b, slice 3 (axis 0)"
    labels = {c: sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "labelsTr" / f"{c}.nii.gz"))) for c in ("case_b",)}
    assert pick_case_and_slice(labels, 2, slice_axis=0) == ("case_b", 3)


def test_the_figure_shows_the_ct_then_the_ground_truth_and_each_model_on_that_slice(tmp_path):
    raw, models = raw_dataset_and_models(tmp_path)
    figure, _ = draw_validation_slice(raw, models, slice_axis=0, label_value=2)
    assert [axes.get_title() for axes in figure.axes] == ["CT (-160 to 240 HU)", "ground truth", "teacher", "student"]
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["kidney", "tumor"]
    shown_slice = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "labelsTr" / "case_b.nii.gz")))[3]
    assert [len(axes.images) for axes in figure.axes] == [1, 2, 2, 2]  # the CT alone, then CT under each overlay
    for axes in figure.axes[1:]:
        overlay = axes.images[1].get_array()
        # every model predicted the ground truth here: each overlay is the slice's labels, background see-through
        assert np.array_equal(overlay.filled(0), shown_slice) and np.array_equal(overlay.mask, shown_slice == 0)


def test_the_saved_picture_has_the_figures_size_and_no_blank_panel(tmp_path):
    raw, models = raw_dataset_and_models(tmp_path)
    path, _ = validation_slice_figure(tmp_path / "slice.png", raw, models, slice_axis=0, label_value=2)
    png = read_png(path)
    figure, _ = draw_validation_slice(raw, models, slice_axis=0, label_value=2)
    assert png.shape[:2] == pixel_size(figure.get_size_inches(), DPI) == (432, 1440)  # four panels of 3 x 3.6 in
    figure.draw_without_rendering()  # lays the panels out as saving did
    ct, *overlays = [axes_pixels(png, axes) for axes in figure.axes]
    assert painted_fraction(ct) > 0.3 and coloured_fraction(ct) == 0  # grey levels of the CT, no overlay
    assert all(painted_fraction(p) > 0.3 and coloured_fraction(p) > 0.1 for p in overlays)  # the labels in colour


def test_without_a_case_every_model_predicted_it_says_so(tmp_path):
    raw, models = raw_dataset_and_models(tmp_path)
    for prediction in (models["student"] / "validation").glob("*.nii.gz"):
        prediction.unlink()
    with pytest.raises(ValueError, match=r"no validation case predicted by every model \(teacher, student\)"):
        validation_slice_figure(tmp_path / "slice.png", raw, models, slice_axis=0, label_value=2)
