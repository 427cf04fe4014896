"""Bad input: each gives an error naming the case, and leaves no dataset and no temporary folder behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conversion_cases import (
    GEOMETRY,
    array,
    ct_array,
    label_array,
    leftovers,
    make_kits_case,
    make_lits_case,
    write_volume,
)
from nnunetv2_hlfd.dataset_conversion import case_jobs, conversion
from nnunetv2_hlfd.dataset_conversion.conversion_error import ConversionError
from nnunetv2_hlfd.dataset_conversion.kits19 import SPEC as KITS19
from nnunetv2_hlfd.dataset_conversion.kits19 import convert_kits19
from nnunetv2_hlfd.dataset_conversion.kits21 import convert_kits21
from nnunetv2_hlfd.dataset_conversion.lits import convert_lits


def refused(convert, raw: Path, *expected: str, **kwargs) -> ConversionError:
    """Run a conversion that must fail: every expected fragment is in the message and nothing is left behind."""
    with pytest.raises(ConversionError) as info:
        convert(nnunet_raw=raw, num_processes=1, **kwargs)
    for fragment in expected:
        assert fragment in str(info.value)
    assert leftovers(raw) == []
    return info.value


def test_image_that_is_not_a_3d_volume_is_refused(kits19, raw):
    volume = sitk.ReadImage(str(kits19 / "case_00001" / "imaging.nii.gz"))
    sitk.WriteImage(sitk.JoinSeries([volume, volume]), str(kits19 / "case_00001" / "imaging.nii.gz"))  # 4-D
    refused(lambda **kw: convert_kits19(kits19, **kw), raw, "case_00001: image file", "is not a single 3-D volume")


def test_missing_image_is_refused(kits19, raw):
    (kits19 / "case_00001" / "imaging.nii.gz").unlink()
    refused(lambda **kw: convert_kits19(kits19, **kw), raw, "case_00001: image file missing", "imaging.nii.gz")


def test_missing_label_is_refused(kits19, raw):
    (kits19 / "case_00002" / "segmentation.nii.gz").unlink()
    refused(lambda **kw: convert_kits19(kits19, **kw), raw, "case_00002: label file missing", "segmentation.nii.gz")


def test_missing_kits21_majority_label_is_refused_even_with_other_aggregates(tmp_path, raw):
    root = tmp_path / "kits21"
    make_kits_case(root, 0, label_name="aggregated_MAJ_seg.nii.gz")
    make_kits_case(root, 1, label_name="aggregated_OR_seg.nii.gz")
    refused(
        lambda **kw: convert_kits21(root, cysts="keep", **kw),
        raw,
        "case_00001: label file missing",
        "aggregated_MAJ_seg.nii.gz",
    )


def test_missing_lits_segmentation_is_refused(tmp_path, raw):
    root = tmp_path / "lits"
    make_lits_case(root, 0)
    write_volume(root / "volume-3.nii", ct_array(3))
    refused(lambda **kw: convert_lits(root, **kw), raw, "liver_3: label file missing", "segmentation-3.nii")


def test_image_and_label_with_different_shapes_are_refused(kits19, raw):
    write_volume(kits19 / "case_00001" / "segmentation.nii.gz", label_array(shape=(7, 32, 32)))
    refused(lambda **kw: convert_kits19(kits19, **kw), raw, "case_00001: image and label shapes differ")


@pytest.mark.parametrize(
    "name, value",
    [
        ("spacing", (0.8, 0.7, 3.0)),
        ("origin", (-120.5, 33.25, 12.0)),
        ("direction", (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)),
    ],
)
def test_image_and_label_with_different_geometry_are_refused(kits19, raw, name, value):
    write_volume(kits19 / "case_00002" / "segmentation.nii.gz", label_array(), **{name: value})
    refused(lambda **kw: convert_kits19(kits19, **kw), raw, f"case_00002: image and label {name} differ")


def test_geometry_differences_within_tolerance_are_accepted_and_snapped_to_the_image(kits19, raw):
    spacing = tuple(s * (1 + 2e-5) for s in GEOMETRY["spacing"])
    write_volume(kits19 / "case_00002" / "segmentation.nii.gz", label_array(), spacing=spacing)
    out = convert_kits19(kits19, raw, num_processes=1)
    written = sitk.ReadImage(str(out / "labelsTr" / "case_00002.nii.gz"))
    image = sitk.ReadImage(str(out / "imagesTr" / "case_00002_0000.nii.gz"))
    assert written.GetSpacing() == image.GetSpacing()


def test_label_values_outside_the_documented_set_are_refused(kits19, raw):
    write_volume(kits19 / "case_00000" / "segmentation.nii.gz", label_array((0, 1, 2, 3)))  # KiTS19 has no cysts
    refused(
        lambda **kw: convert_kits19(kits19, **kw),
        raw,
        "case_00000: label values 3",
        "outside the documented set (0 background, 1 kidney, 2 tumour)",
    )


def test_many_unexpected_label_values_name_the_first_ten_and_count_the_rest(kits19, raw):
    write_volume(kits19 / "case_00000" / "segmentation.nii.gz", label_array((0, 1, 2, *range(4, 16))))
    refused(
        lambda **kw: convert_kits19(kits19, **kw),
        raw,
        "case_00000: label values 4, 5, 6, 7, 8, 9, 10, 11, 12, 13 and 2 more in",
    )


def test_non_integer_label_values_are_refused(kits19, raw):
    write_volume(kits19 / "case_00000" / "segmentation.nii.gz", label_array().astype(np.float32) * 0.75)
    refused(lambda **kw: convert_kits19(kits19, **kw), raw, "case_00000: label values 0.75, 1.5")


def test_unreadable_file_is_refused(kits19, raw):
    (kits19 / "case_00001" / "segmentation.nii.gz").write_bytes(b"not a nifti file" * 20)
    refused(lambda **kw: convert_kits19(kits19, **kw), raw, "case_00001: cannot read label file", "segmentation.nii.gz")


@pytest.mark.parametrize("ext", [".nii.gz", ".nii"])
def test_truncated_file_is_refused(tmp_path, raw, ext):
    root = tmp_path / "kits19"
    make_kits_case(root, 0, image_ext=ext)
    image = root / "case_00000" / f"imaging{ext}"
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    refused(lambda **kw: convert_kits19(root, **kw), raw, "case_00000: cannot read image file", "truncated")


def test_empty_input_folder_is_refused(tmp_path, raw):
    (tmp_path / "empty").mkdir()
    refused(
        lambda **kw: convert_kits19(tmp_path / "empty", **kw),
        raw,
        "no KiTS2019 training cases found",
        "case_XXXXX/imaging.nii.gz",
    )


def test_missing_input_folder_is_refused(tmp_path, raw):
    refused(lambda **kw: convert_lits(tmp_path / "nowhere", **kw), raw, "input folder does not exist")


def test_duplicate_case_across_lits_batches_is_refused(tmp_path, raw):
    root = tmp_path / "lits"
    make_lits_case(root / "Training Batch 1", 5)
    make_lits_case(root / "Training Batch 2", 5)
    refused(
        lambda **kw: convert_lits(root, **kw), raw, "liver_5: duplicate case", "Training Batch 1", "Training Batch 2"
    )


def test_duplicate_case_as_nii_and_nii_gz_is_refused(kits19, raw):
    write_volume(kits19 / "case_00001" / "imaging.nii", ct_array(1))
    refused(lambda **kw: convert_kits19(kits19, **kw), raw, "case_00001: duplicate case", "imaging.nii,")


def test_every_problem_is_listed_not_just_the_first(kits19, raw):
    (kits19 / "case_00000" / "segmentation.nii.gz").unlink()
    write_volume(kits19 / "case_00002" / "segmentation.nii.gz", label_array((0, 1, 2, 9)))
    error = refused(lambda **kw: convert_kits19(kits19, **kw), raw, "2 problem(s)")
    assert [p.split(":")[0] for p in error.problems] == ["case_00000", "case_00002"]


def test_problems_found_in_worker_processes_are_reported_per_case(kits19, raw, monkeypatch):
    write_volume(kits19 / "case_00001" / "segmentation.nii.gz", label_array((0, 1, 2, 5)))
    (kits19 / "case_00002" / "imaging.nii.gz").write_bytes(b"garbage")
    contexts = []
    get_context = case_jobs.multiprocessing.get_context

    def spy(method):
        contexts.append(method)
        return get_context(method)

    monkeypatch.setattr(case_jobs.multiprocessing, "get_context", spy)
    with pytest.raises(ConversionError) as info:
        convert_kits19(kits19, raw, num_processes=2)
    assert contexts == ["spawn"]  # the cases really ran in worker processes
    assert [p.split(":")[0] for p in info.value.problems] == ["case_00001", "case_00002"]
    assert "label values 5" in info.value.problems[0]
    assert "cannot read image file" in info.value.problems[1]
    assert leftovers(raw) == []


def test_interrupted_run_leaves_no_partial_dataset(kits19, raw, monkeypatch):
    convert_case = case_jobs._convert_case
    calls = []

    def interrupted_after_first_case(job):
        calls.append(job.case.case_id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return convert_case(job)

    monkeypatch.setattr(case_jobs, "_convert_case", interrupted_after_first_case)
    with pytest.raises(KeyboardInterrupt):
        convert_kits19(kits19, raw, num_processes=1)
    assert calls == ["case_00000", "case_00001"]  # the first case had been written into the temporary folder
    assert leftovers(raw) == []


def test_existing_target_is_refused_and_left_untouched(kits19, raw):
    target = raw / "Dataset040_KiTS2019"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    with pytest.raises(ConversionError, match="already exists; pass --overwrite"):
        convert_kits19(kits19, raw, num_processes=1)
    assert [p.name for p in target.iterdir()] == ["mine.txt"]
    assert leftovers(raw) == ["Dataset040_KiTS2019"]


def test_overwrite_replaces_existing_target(kits19, raw):
    target = raw / "Dataset040_KiTS2019"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    out = convert_kits19(kits19, raw, overwrite=True, num_processes=1)
    assert out == target
    assert sorted(p.name for p in target.iterdir()) == ["dataset.json", "imagesTr", "labelsTr"]
    assert leftovers(raw) == ["Dataset040_KiTS2019"]


def test_failed_overwrite_keeps_the_previous_dataset(kits19, raw):
    first = convert_kits19(kits19, raw, num_processes=1)
    write_volume(kits19 / "case_00001" / "segmentation.nii.gz", label_array((0, 1, 2, 4)))
    with pytest.raises(ConversionError, match="case_00001: label values 4"):
        convert_kits19(kits19, raw, overwrite=True, num_processes=1)
    np.testing.assert_array_equal(array(first / "labelsTr" / "case_00001.nii.gz"), label_array())
    assert leftovers(raw) == ["Dataset040_KiTS2019"]


def test_dataset_id_used_by_another_dataset_is_refused(kits19, raw):
    (raw / "Dataset040_SomethingElse").mkdir()
    with pytest.raises(ConversionError, match="dataset id 040 is already used by Dataset040_SomethingElse"):
        convert_kits19(kits19, raw, num_processes=1)
    assert leftovers(raw) == ["Dataset040_SomethingElse"]


def test_check_reports_every_problem_without_writing(kits19, raw):
    (kits19 / "case_00000" / "segmentation.nii.gz").unlink()
    write_volume(kits19 / "case_00001" / "segmentation.nii.gz", label_array(shape=(8, 32, 31)))
    write_volume(kits19 / "case_00002" / "segmentation.nii.gz", label_array((0, 1, 2, 6)))
    problems = convert_kits19(kits19, raw, check=True, num_processes=1)
    assert [p.split(":")[0] for p in problems] == ["case_00000", "case_00001", "case_00002"]
    assert leftovers(raw) == []


def test_check_includes_an_existing_target(kits19, raw):
    (raw / "Dataset040_KiTS2019").mkdir()
    problems = convert_kits19(kits19, raw, check=True, num_processes=1)
    assert len(problems) == 1 and "already exists" in problems[0]


def test_check_on_good_data_finds_nothing_and_writes_nothing(kits19, raw):
    assert convert_kits19(kits19, raw, check=True, num_processes=1) == []
    assert leftovers(raw) == []


def test_no_nnunet_raw_gives_a_clear_error(kits19, monkeypatch):
    monkeypatch.delenv("nnUNet_raw", raising=False)
    with pytest.raises(ConversionError, match="set the nnUNet_raw environment variable"):
        convert_kits19(kits19, num_processes=1)


def test_nnunet_raw_defaults_to_the_environment_variable(kits19, raw, monkeypatch):
    monkeypatch.setenv("nnUNet_raw", str(raw))
    out = convert_kits19(kits19, num_processes=1)
    assert out == raw / "Dataset040_KiTS2019"
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dataset_id": 1000}, "out of range"),
        ({"dataset_name": "Kits 19/x"}, "must be letters"),
    ],
)
def test_invalid_dataset_id_or_name_is_refused(kits19, raw, kwargs, message):
    with pytest.raises(ConversionError, match=message):
        convert_kits19(kits19, raw, num_processes=1, **kwargs)
    assert leftovers(raw) == []


def test_cysts_option_is_refused_for_datasets_without_cysts(kits19, raw):
    with pytest.raises(ConversionError, match="KiTS2019 has no cyst label"):
        conversion.convert(KITS19, kits19, raw, cysts="keep", num_processes=1)


@pytest.mark.parametrize("labels", ["full", "tumour"])
def test_cysts_must_be_chosen_where_the_dataset_has_them(tmp_path, raw, labels):
    root = tmp_path / "kits21"
    make_kits_case(root, 0, label_name="aggregated_MAJ_seg.nii.gz", label_values=(0, 1, 2, 3))
    refused(
        lambda **kw: convert_kits21(root, labels=labels, **kw),
        raw,
        f"--labels {labels} on KiTS2021 needs an explicit --cysts",
        "add --cysts keep, --cysts kidney or --cysts drop",
    )


def test_missing_cyst_choice_is_refused_even_in_check_mode(tmp_path, raw):
    root = tmp_path / "kits21"
    make_kits_case(root, 0, label_name="aggregated_MAJ_seg.nii.gz", label_values=(0, 1, 2, 3))
    refused(lambda **kw: convert_kits21(root, labels="tumour", check=True, **kw), raw, "needs an explicit --cysts")
