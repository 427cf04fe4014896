"""A real KiTS19 label file (manual, case_00061, 29x512x512, KiTS19's permuted axes) through the converter."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conversion_cases import geometry
from nnunetv2_hlfd.dataset_conversion.kits19 import convert_kits19

# In the repository (origin and licence: tests/data/realct/README.md), so the test runs in every clone.
REAL_LABEL = Path(__file__).resolve().parents[1] / "data" / "realct" / "case_00061_segmentation.nii.gz"


@pytest.fixture
def real_case(tmp_path: Path) -> Path:
    case = tmp_path / "kits19" / "case_00061"
    case.mkdir(parents=True)
    shutil.copyfile(REAL_LABEL, case / "segmentation.nii.gz")
    # The CT itself is not available: a synthetic image on exactly the label's grid stands in for it.
    label = sitk.ReadImage(str(REAL_LABEL))
    image = sitk.GetImageFromArray(np.full(sitk.GetArrayViewFromImage(label).shape, -1000, dtype=np.int16))
    image.CopyInformation(label)
    sitk.WriteImage(image, str(case / "imaging.nii.gz"))
    return case.parent


def test_real_kits19_label_keeps_geometry_and_values_exactly(real_case, tmp_path):
    out = convert_kits19(real_case, tmp_path / "raw", num_processes=1)
    source = sitk.ReadImage(str(REAL_LABEL))
    written = sitk.ReadImage(str(out / "labelsTr" / "case_00061.nii.gz"))
    assert geometry(written) == geometry(source)
    assert written.GetPixelIDValue() == sitk.sitkUInt8
    source_voxels = sitk.GetArrayFromImage(source)
    assert set(np.unique(source_voxels)) == {0, 1, 2}  # kidney and tumour both present, so the check can fail
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), source_voxels)


def test_real_kits19_label_in_tumour_layout_keeps_exactly_the_tumour_voxels(real_case, tmp_path):
    out = convert_kits19(real_case, tmp_path / "raw", labels="tumour", num_processes=1)
    source_voxels = sitk.GetArrayFromImage(sitk.ReadImage(str(REAL_LABEL)))
    written = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labelsTr" / "case_00061.nii.gz")))
    np.testing.assert_array_equal(written, (source_voxels == 2).astype(np.uint8))
