"""Tests of the synthetic kidney-and-tumour CT dataset generator."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from nnunetv2_hlfd.dataset_writers import synthetic
from nnunetv2_hlfd.dataset_writers.raw_dataset import RawDatasetError
from nnunetv2_hlfd.dataset_writers.synthetic import generate_synthetic_kidney_dataset, make_case

# small volumes keep the folder-handling tests fast; they still hold two kidneys
TINY_SHAPE = (8, 32, 32)
NUM_TRAINING = 6  # > 5, so the schedule includes one tumour-free case
NUM_TEST = 1


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """One default-sized dataset shared by the read-only tests."""
    raw = tmp_path_factory.mktemp("nnUNet_raw")
    return generate_synthetic_kidney_dataset(raw, num_training_cases=NUM_TRAINING, num_test_cases=NUM_TEST)


def read_array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def training_pairs(folder: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    labels = sorted((folder / "labelsTr").glob("*.nii.gz"))
    images = [folder / "imagesTr" / label.name.replace(".nii.gz", "_0000.nii.gz") for label in labels]
    return [(read_array(image), read_array(label)) for image, label in zip(images, labels)]


def file_digests(folder: Path) -> dict[str, str]:
    return {
        str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    }


# ---------------------------------------------------------------------------- format


def test_dataset_passes_nnunet_integrity_check(dataset, capfd):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    # raises on missing files, unexpected labels, shape or spacing mismatches
    verify_dataset_integrity(str(dataset), num_processes=1)
    # origin and direction mismatches are only printed (by the worker process, hence capfd)
    output = capfd.readouterr().out
    assert "Error" not in output and "Warning" not in output, output


def test_layout_and_dataset_json_follow_nnunet_raw_format(dataset):
    assert dataset.name == "Dataset990_SyntheticKidney"
    train_ids = [f"kidney_{i:03d}" for i in range(NUM_TRAINING)]
    assert sorted(p.name for p in (dataset / "imagesTr").iterdir()) == [f"{c}_0000.nii.gz" for c in train_ids]
    assert sorted(p.name for p in (dataset / "labelsTr").iterdir()) == [f"{c}.nii.gz" for c in train_ids]
    # test cases are numbered after the training cases, so every case id is unique
    assert [p.name for p in (dataset / "imagesTs").iterdir()] == [f"kidney_{NUM_TRAINING:03d}_0000.nii.gz"]

    meta = json.loads((dataset / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "CT"}
    assert meta["labels"] == {"background": 0, "kidney": 1, "tumor": 2}
    assert meta["numTraining"] == NUM_TRAINING
    assert meta["file_ending"] == ".nii.gz"
    assert meta["licence"] == "CC0 (synthetic)"
    assert "synthetic" in meta["description"].lower()


def test_images_are_int16_and_labels_uint8_with_labels_0_1_2(dataset):
    image = sitk.ReadImage(str(dataset / "imagesTr" / "kidney_000_0000.nii.gz"))
    label = sitk.ReadImage(str(dataset / "labelsTr" / "kidney_000.nii.gz"))
    assert image.GetPixelID() == sitk.sitkInt16
    assert label.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(sitk.GetArrayFromImage(label))) == {0, 1, 2}


def test_written_spacing_and_size_follow_the_requested_zyx_order(tmp_path):
    # all three axes differ, so any swap between numpy (z, y, x) and SimpleITK (x, y, z) shows
    shape, spacing = (10, 36, 44), (2.5, 0.7, 0.9)
    folder = generate_synthetic_kidney_dataset(tmp_path, num_training_cases=1, shape=shape, spacing=spacing)
    for path in (folder / "imagesTr" / "kidney_000_0000.nii.gz", folder / "labelsTr" / "kidney_000.nii.gz"):
        volume = sitk.ReadImage(str(path))
        assert volume.GetSpacing()[2] == pytest.approx(2.5)
        assert volume.GetSpacing() == pytest.approx((0.9, 0.7, 2.5))
        assert volume.GetSize() == (44, 36, 10)
        assert volume.GetDirection() == pytest.approx(np.eye(3).ravel())


# ---------------------------------------------------------------------------- reproducibility


def test_same_seed_gives_identical_files(tmp_path):
    arguments = {"num_training_cases": 3, "num_test_cases": 1, "shape": TINY_SHAPE, "seed": 3}
    first = generate_synthetic_kidney_dataset(tmp_path / "a", **arguments)
    second = generate_synthetic_kidney_dataset(tmp_path / "b", **arguments)
    assert file_digests(first) == file_digests(second)


def test_different_seed_gives_different_volumes(tmp_path):
    first = generate_synthetic_kidney_dataset(tmp_path / "a", num_training_cases=2, shape=TINY_SHAPE, seed=0)
    second = generate_synthetic_kidney_dataset(tmp_path / "b", num_training_cases=2, shape=TINY_SHAPE, seed=1)
    for (image_a, label_a), (image_b, label_b) in zip(training_pairs(first), training_pairs(second)):
        assert not np.array_equal(image_a, image_b)
        assert not np.array_equal(label_a, label_b)


def test_make_case_is_a_pure_function_of_the_generator_state():
    image_a, label_a = make_case(np.random.default_rng(11))
    image_b, label_b = make_case(np.random.default_rng(11))
    assert np.array_equal(image_a, image_b) and np.array_equal(label_a, label_b)
    assert image_a.shape == label_a.shape == synthetic.DEFAULT_SHAPE


# ---------------------------------------------------------------------------- anatomy


def test_every_tumour_touches_its_kidney(dataset):
    tumour_components = 0
    for _, label in training_pairs(dataset):
        components, count = ndimage.label(label == 2)
        for component in range(1, count + 1):
            # grown by one voxel (26-neighbourhood), the tumour must reach kidney tissue
            grown = ndimage.binary_dilation(components == component, structure=np.ones((3, 3, 3), bool))
            assert (label[grown] == 1).any(), "a tumour lies outside every kidney"
        tumour_components += count
    assert tumour_components > 0


def test_most_cases_have_tumour_and_some_have_none(dataset):
    has_tumour = [(label == 2).any() for _, label in training_pairs(dataset)]
    assert sum(has_tumour) >= 0.75 * len(has_tumour)
    assert not all(has_tumour)


def test_tumour_sizes_vary_between_cases(tmp_path):
    folder = generate_synthetic_kidney_dataset(tmp_path, num_training_cases=12, seed=5)
    sizes = [int((label == 2).sum()) for _, label in training_pairs(folder) if (label == 2).any()]
    assert max(sizes) > 4 * min(sizes)


def test_geometry_is_in_millimetres_so_spacing_does_not_change_the_organs():
    # the same physical slab (72 x 76.8 x 76.8 mm) sampled with thick and with isotropic voxels
    thick, iso = (3.0, 0.8, 0.8), (0.8, 0.8, 0.8)
    _, label_thick = make_case(np.random.default_rng(2), (24, 96, 96), thick, num_tumours=1)
    _, label_iso = make_case(np.random.default_rng(2), (90, 96, 96), iso, num_tumours=1)
    for structure in (1, 2):
        volume_thick = (label_thick == structure).sum() * np.prod(thick)
        volume_iso = (label_iso == structure).sum() * np.prod(iso)
        assert volume_thick == pytest.approx(volume_iso, rel=0.1)
        # mean z in mm from the volume centre
        z_thick = (np.nonzero(label_thick == structure)[0].mean() - 11.5) * 3.0
        z_iso = (np.nonzero(label_iso == structure)[0].mean() - 44.5) * 0.8
        assert z_thick == pytest.approx(z_iso, abs=1.5)


def test_kidney_is_brighter_than_tumour_which_is_brighter_than_soft_tissue():
    image, label = make_case(np.random.default_rng(4), num_tumours=2)
    ball = ndimage.generate_binary_structure(3, 1)
    body = ndimage.binary_erosion(image > -500, ball, iterations=2)
    # bone found on a denoised copy; soft tissue kept away from bone and organs, whose edges are blurred
    denoised = ndimage.gaussian_filter(image.astype(np.float32), 1.0)
    bone = ndimage.binary_dilation(denoised > 250, ball, iterations=2)
    organs = ndimage.binary_dilation(label > 0, ball, iterations=2)
    soft_tissue = body & ~bone & ~organs
    assert soft_tissue.sum() > 1000 and (label == 2).sum() > 50

    kidney_hu, tumour_hu, soft_hu = (image[m].mean(dtype=float) for m in (label == 1, label == 2, soft_tissue))
    assert kidney_hu > tumour_hu + 20
    assert tumour_hu > soft_hu + 10
    assert image[image < -500].mean() == pytest.approx(-1000, abs=30)  # air around the body


# ---------------------------------------------------------------------------- folder handling


def test_existing_dataset_folder_is_refused_and_left_unchanged(tmp_path):
    folder = generate_synthetic_kidney_dataset(tmp_path, num_training_cases=1, shape=TINY_SHAPE)
    before = file_digests(folder)
    with pytest.raises(RawDatasetError, match=r"Dataset990_SyntheticKidney.*overwrite=True.*another dataset id"):
        generate_synthetic_kidney_dataset(tmp_path, num_training_cases=2, shape=TINY_SHAPE, seed=1)
    assert file_digests(folder) == before
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no staging folder left behind


def test_overwrite_replaces_the_existing_folder(tmp_path):
    folder = generate_synthetic_kidney_dataset(tmp_path, num_training_cases=1, shape=TINY_SHAPE)
    (folder / "stale.txt").write_text("from an earlier run")
    again = generate_synthetic_kidney_dataset(tmp_path, num_training_cases=2, shape=TINY_SHAPE, overwrite=True)
    assert again == folder
    assert not (folder / "stale.txt").exists()
    assert json.loads((folder / "dataset.json").read_text())["numTraining"] == 2
    assert len(list((folder / "labelsTr").iterdir())) == 2
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]


@pytest.mark.parametrize("overwrite", [False, True])
def test_same_id_under_another_name_is_refused(tmp_path, overwrite):
    (tmp_path / "Dataset990_Other").mkdir()
    with pytest.raises(RawDatasetError, match=r"990.*Dataset990_Other"):
        generate_synthetic_kidney_dataset(tmp_path, num_training_cases=1, shape=TINY_SHAPE, overwrite=overwrite)
    assert [p.name for p in tmp_path.iterdir()] == ["Dataset990_Other"]


def test_interrupted_generation_leaves_nothing_behind(tmp_path, monkeypatch):
    written = []

    def write_then_fail(array, spacing, path):
        if written:
            raise KeyboardInterrupt  # as if the user stopped the run half way
        written.append(path)

    monkeypatch.setattr(synthetic, "_write_volume", write_then_fail)
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic_kidney_dataset(tmp_path, num_training_cases=2, shape=TINY_SHAPE)
    assert written and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "bad_argument",
    [
        {"dataset_id": 0},
        {"dataset_id": 1000},
        {"dataset_name": "has space"},
        {"num_training_cases": 0},
        {"shape": (8, 32)},
    ],
)
def test_invalid_arguments_are_refused_before_anything_is_written(tmp_path, bad_argument):
    arguments = {"num_training_cases": 1, "shape": TINY_SHAPE} | bad_argument
    with pytest.raises(ValueError):
        generate_synthetic_kidney_dataset(tmp_path / "raw", **arguments)
    assert not (tmp_path / "raw").exists()


# ---------------------------------------------------------------------------- study preset

STUDY_SEEDS = range(8)


def lesion_pieces(label: np.ndarray, value: int) -> list[np.ndarray]:
    components, count = ndimage.label(label == value)
    return [components == piece for piece in range(1, count + 1)]


@pytest.fixture(scope="module")
def study_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    return [make_case(np.random.default_rng([7, seed]), preset="study", num_tumours=3) for seed in STUDY_SEEDS]


@pytest.fixture(scope="module")
def default_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    return [make_case(np.random.default_rng([7, seed]), num_tumours=2) for seed in STUDY_SEEDS]


def solidity(mask: np.ndarray) -> float:
    """Voxels over the volume of their convex hull (1 for a convex body, lower for a lobulated one)."""
    from scipy.spatial import ConvexHull

    corners = np.argwhere(mask)[:, None, :] + np.array(np.meshgrid([0, 1], [0, 1], [0, 1])).reshape(3, -1).T
    return mask.sum() / ConvexHull(corners.reshape(-1, 3)).volume


def test_study_tumours_are_lobulated_not_ellipsoids(study_cases, default_cases):
    def median_solidity(cases):
        return np.median([solidity(p) for _, label in cases for p in lesion_pieces(label, 2) if p.sum() >= 30])

    assert median_solidity(study_cases) < median_solidity(default_cases) - 0.08


def test_study_tumours_have_heterogeneous_texture(study_cases, default_cases):
    def mean_spread(cases):  # HU standard deviation inside each lesion's core, denoised (texture is smooth)
        return np.mean(
            [
                ndimage.gaussian_filter(image.astype(np.float32), (0.5, 1, 1))[ndimage.binary_erosion(p)].std()
                for image, label in cases
                for p in lesion_pieces(label, 2)
                if ndimage.binary_erosion(p).sum() >= 20
            ]
        )

    assert mean_spread(study_cases) > mean_spread(default_cases) + 4


def lesion_contrasts(cases) -> list[float]:
    """Kidney HU around each lesion minus the lesion's HU, on a denoised copy."""
    contrasts = []
    for image, label in cases:
        denoised = ndimage.gaussian_filter(image.astype(np.float32), 1.0)
        for piece in lesion_pieces(label, 2):
            core = ndimage.binary_erosion(piece)
            ring = ndimage.binary_dilation(piece, iterations=3) & ~ndimage.binary_dilation(piece) & (label == 1)
            if core.sum() >= 10 and ring.sum() >= 10:
                contrasts.append(float(denoised[ring].mean() - denoised[core].mean()))
    return contrasts


def test_study_contrast_is_low_and_varied_with_nearly_iso_dense_lesions(study_cases, default_cases):
    contrasts = lesion_contrasts(study_cases)
    assert min(abs(c) for c in contrasts) < 12  # nearly iso-dense
    assert max(contrasts) - min(contrasts) > 40  # varied
    # the default preset's tumours are all clearly darker than the kidney
    assert min(lesion_contrasts(default_cases)) > 25


def test_study_has_small_lesions_and_several_per_kidney(study_cases):
    sizes_mm3 = [
        p.sum() * np.prod(synthetic.DEFAULT_SPACING) for _, label in study_cases for p in lesion_pieces(label, 2)
    ]
    assert min(sizes_mm3) < 4 / 3 * np.pi * 3.0**3  # smaller than a 3 mm-radius ball
    assert max(sizes_mm3) > 10 * min(sizes_mm3)

    def most_lesions_in_one_kidney(label):
        kidneys, _ = ndimage.label(label > 0)
        return max(np.bincount([kidneys[p].max() for p in lesion_pieces(label, 2)]))

    assert max(most_lesions_in_one_kidney(label) for _, label in study_cases) >= 2


def test_study_cysts_are_water_dense_and_labelled_kidney_not_tumour(study_cases, default_cases):
    def water_dense_kidney_voxels(cases):  # kidney tissue is enhanced to 140-170 HU, cysts are 0-20 HU
        total = 0
        for image, label in cases:
            denoised = ndimage.gaussian_filter(image.astype(np.float32), (0.3, 1.0, 1.0))  # thick slices: in-plane
            total += int(((label == 1) & (denoised < 50)).sum())
        return total

    assert water_dense_kidney_voxels(study_cases) > 100
    assert water_dense_kidney_voxels(default_cases) == 0


def test_study_body_has_intensity_inhomogeneity(study_cases, default_cases):
    def octant_spread(image, label):  # soft tissue mean HU per octant of the volume, max - min
        denoised = ndimage.gaussian_filter(image.astype(np.float32), 1.0)
        soft = ndimage.binary_erosion(image > -500, iterations=2) & (denoised < 120)
        soft &= ~ndimage.binary_dilation(label > 0, iterations=2)
        halves = [np.arange(n) < n // 2 for n in image.shape]
        means = [
            denoised[soft & (hz[:, None, None] == a) & (hy[None, :, None] == b) & (hx[None, None, :] == c)].mean()
            for hz, hy, hx in [halves]
            for a in (0, 1)
            for b in (0, 1)
            for c in (0, 1)
        ]
        return max(means) - min(means)

    assert np.median([octant_spread(*case) for case in study_cases]) > 12
    assert np.median([octant_spread(*case) for case in default_cases]) < 6


def test_study_preset_is_reproducible_and_recorded(tmp_path):
    arguments = {"num_training_cases": 2, "shape": TINY_SHAPE, "seed": 4, "preset": "study"}
    first = generate_synthetic_kidney_dataset(tmp_path / "a", **arguments)
    second = generate_synthetic_kidney_dataset(tmp_path / "b", **arguments)
    assert file_digests(first) == file_digests(second)
    assert json.loads((first / "dataset.json").read_text())["synthetic_generator"]["preset"] == "study"


def test_unknown_preset_is_refused_naming_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"preset must be one of default, study, got 'hard'"):
        generate_synthetic_kidney_dataset(tmp_path / "raw", num_training_cases=1, shape=TINY_SHAPE, preset="hard")
    assert not (tmp_path / "raw").exists()
