"""hlfd_convert_kits19_geometry: real KiTS19 labels (two manual cases copied into tests/data/realct, CC BY-NC-SA
4.0, origin there) and generated ones, cropped, resampled and given a simulated CT."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conversion_cases import leftovers
from nnunetv2_hlfd.dataset_conversion.kits19_geometry import (
    GeometrySettings,
    convert_kits19_geometry,
    find_segmentations,
    main,
    slice_axis,
)

from nnunetv2_hlfd.dataset_writers.simulated_ct import best_window_dice

REAL = Path(__file__).resolve().parents[1] / "data" / "realct"
REAL_CASES = ("case_00004", "case_00061")


@pytest.fixture
def kits19_clone(tmp_path: Path) -> Path:
    """The layout of a kits19 clone's data/ folder, with the two real label maps and no CT."""
    for case in REAL_CASES:
        (tmp_path / "kits19" / "data" / case).mkdir(parents=True)
        shutil.copyfile(
            REAL / f"{case}_segmentation.nii.gz", tmp_path / "kits19" / "data" / case / "segmentation.nii.gz"
        )
    (tmp_path / "kits19" / "data" / "case_00210").mkdir()  # an image-only test case: no label, skipped
    return tmp_path / "kits19"


def volume_ml(image: sitk.Image, value: int) -> float:
    return float((sitk.GetArrayViewFromImage(image) == value).sum() * np.prod(image.GetSpacing()) / 1000)


def test_real_labels_keep_their_geometry_on_the_converted_grid(kits19_clone, tmp_path):
    target, check = convert_kits19_geometry(kits19_clone, tmp_path / "raw", 64, num_processes=1)
    for case in REAL_CASES:
        source = sitk.ReadImage(str(REAL / f"{case}_segmentation.nii.gz"))
        label = sitk.ReadImage(str(target / "labelsTr" / f"{case}.nii.gz"))
        image = sitk.ReadImage(str(target / "imagesTr" / f"{case}_0000.nii.gz"))
        assert image.GetSize() == label.GetSize() and image.GetPixelIDValue() == sitk.sitkInt16
        assert np.allclose(label.GetDirection(), source.GetDirection())  # orientation kept
        axial = slice_axis(source)
        # these scans have 4 and 5 mm slices: kept; in-plane coarsened to 2.5 mm
        assert label.GetSpacing()[axial] == source.GetSpacing()[axial] >= 4.0
        assert all(label.GetSpacing()[a] == 2.5 for a in range(3) if a != axial)
        # the crop holds all of both kidneys and every tumour: volumes within a few percent of the source's
        for value in (1, 2):
            assert volume_ml(label, value) == pytest.approx(volume_ml(source, value), rel=0.08)
        assert set(np.unique(sitk.GetArrayViewFromImage(label))) == {0, 1, 2}
    dataset = json.loads((target / "dataset.json").read_text())
    assert dataset["labels"] == {"background": 0, "kidney": 1, "tumor": 2} and dataset["numTraining"] == 2
    assert "CC BY-NC-SA 4.0" in dataset["licence"]  # nnU-Net's key
    assert dataset["kits19_geometry"]["cases"] == list(REAL_CASES)
    assert 0.0 < check["tumor"]["best_window_dice"] < 1.0


def test_the_tumours_are_not_recovered_by_an_intensity_window(tmp_path):
    """A plain threshold on the simulated CT scores far below what a network must reach (KiTS19 teachers
    reach tumour Dice above 0.8): kidneys are not one intensity, tumours differ lesion by lesion."""
    folder = tmp_path / "segs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(6):
        label = np.zeros((40, 60, 60), dtype=np.uint8)
        z, y, x = np.ogrid[:40, :60, :60]
        for centre_x in (18, 42):
            kidney = ((z - 20) / 12) ** 2 + ((y - 30) / 9) ** 2 + ((x - centre_x) / 6) ** 2 <= 1
            label[kidney] = 1
        tz, ty = rng.integers(15, 25), rng.integers(25, 35)
        label[((z - tz) / 4) ** 2 + ((y - ty) / 4) ** 2 + ((x - 18) / 4) ** 2 <= 1] = 2
        image = sitk.GetImageFromArray(label)
        image.SetSpacing((1.0, 1.0, 3.0))
        sitk.WriteImage(image, str(folder / f"case_{index:05d}_segmentation.nii.gz"))
    target, check = convert_kits19_geometry(folder, tmp_path / "raw", 65, num_processes=1)
    images = [sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in sorted((target / "imagesTr").iterdir())]
    labels = [sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in sorted((target / "labelsTr").iterdir())]
    assert best_window_dice(images, labels, 2)[0] == pytest.approx(check["tumor"]["best_window_dice"], abs=1e-3)
    assert check["tumor"]["best_window_dice"] < 0.5


def test_best_window_dice_finds_a_separable_class_exactly():
    image = np.array([[0, 0, 100, 100, 200]], dtype=np.int16)
    label = np.array([[0, 0, 1, 1, 0]])
    dice, (low, high) = best_window_dice([image], [label], 1)
    assert dice == pytest.approx(1.0) and low <= 100 < high <= 200


def test_the_same_seed_gives_the_same_images_and_another_seed_others(kits19_clone, tmp_path):
    first, _ = convert_kits19_geometry(kits19_clone, tmp_path / "a", 64, num_cases=1, num_processes=1)
    again, _ = convert_kits19_geometry(kits19_clone, tmp_path / "b", 64, num_cases=1, num_processes=1)
    other, _ = convert_kits19_geometry(
        kits19_clone, tmp_path / "c", 64, settings=GeometrySettings(seed=1), num_cases=1, num_processes=1
    )

    def image(target: Path) -> np.ndarray:
        return sitk.GetArrayFromImage(sitk.ReadImage(str(target / "imagesTr" / "case_00004_0000.nii.gz")))

    assert np.array_equal(image(first), image(again)) and not np.array_equal(image(first), image(other))


def test_a_label_with_a_foreign_value_is_refused_naming_the_case_and_nothing_is_written(tmp_path, capsys):
    folder = tmp_path / "segs"
    folder.mkdir()
    label = np.zeros((10, 20, 20), dtype=np.uint8)
    label[3:6, 5:15, 5:15] = 3
    sitk.WriteImage(sitk.GetImageFromArray(label), str(folder / "case_00007_segmentation.nii.gz"))
    status = main([str(folder), "--nnunet-raw", str(tmp_path / "raw"), "-np", "1"])
    message = capsys.readouterr().err
    assert status == 1 and "case_00007" in message and "label values [0, 3]" in message
    assert "Traceback" not in message
    assert leftovers(tmp_path / "raw") == [] and not list((tmp_path / "raw").glob("Dataset*"))


def test_a_folder_without_segmentations_is_refused_with_the_layouts_it_reads(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--nnunet-raw", str(tmp_path / "raw")]) == 1
    message = capsys.readouterr().err
    assert "no KiTS19 segmentations in" in message and "case_XXXXX/segmentation.nii.gz" in message


def test_a_clone_and_its_data_folder_are_both_found(kits19_clone):
    assert list(find_segmentations(kits19_clone)) == list(REAL_CASES)
    assert list(find_segmentations(kits19_clone / "data")) == list(REAL_CASES)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--spacing", "0"], "--spacing and --slice-spacing must be above 0 and --margin at least 0 (mm), got 0.0"),
        (["--margin", "-1"], "--margin at least 0 (mm), got 2.5, 3.0 and -1.0"),
        (["--cases", "0"], "--cases must be at least 1, got 0"),
    ],
)
def test_bad_options_are_refused_naming_the_value_and_nothing_is_written(
    kits19_clone, tmp_path, capsys, options, message
):
    assert main([str(kits19_clone), "--nnunet-raw", str(tmp_path / "raw"), *options]) == 1
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert leftovers(tmp_path / "raw") == []
