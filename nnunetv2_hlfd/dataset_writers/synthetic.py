"""Synthetic kidney-and-tumour CT dataset in nnU-Net v2's raw format.

The demo and the integration tests need a KiTS-like dataset without downloading anything, so this
module writes small CT-like phantoms (their anatomy: synthetic_anatomy.py).

Every case draws from its own ``numpy.random.Generator`` seeded by ``(seed, case index)``, so a dataset
is exactly reproducible and one case does not change when the number of cases does.

Two presets: ``default`` (ellipsoid tumours of clear contrast, learnable in a few hundred iterations,
for the demo's kidneys and the tests) and ``study``, hard enough that a small student can fall short
of its teacher (synthetic_study_preset.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

from nnunetv2_hlfd.dataset_writers.raw_dataset import write_raw_dataset
from nnunetv2_hlfd.dataset_writers.synthetic_anatomy import LABELS, make_default_case
from nnunetv2_hlfd.dataset_writers.synthetic_study_preset import STUDY_MAX_TUMOURS, make_study_case
from nnunetv2_hlfd.utilities.problems import UserFacingError

__all__ = ["LABELS", "PRESETS", "generate_synthetic_kidney_dataset", "make_case"]

FILE_ENDING = ".nii.gz"
CASE_PREFIX = "kidney"

DEFAULT_SHAPE = (24, 96, 96)
DEFAULT_SPACING = (3.0, 0.8, 0.8)

# every fifth case has no tumour, so a dataset always has mostly tumour cases (the class stays
# learnable) and, from five cases on, at least one tumour-free kidney pair, as in real cohorts
TUMOUR_FREE_EVERY = 5

PRESETS = ("default", "study")


def make_case(
    rng: np.random.Generator,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing: tuple[float, float, float] = DEFAULT_SPACING,
    *,
    num_tumours: int | None = None,
    preset: str = "default",
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one CT-like volume and its label map, both (z, y, x).

    Returns ``(image, label)``: image int16 in HU, label uint8 with 0 background, 1 kidney,
    2 tumour (tumour overrides kidney). ``num_tumours`` (0-2, or 0-4 for the ``study`` preset) fixes
    the tumour count; by default it is drawn from ``rng`` (mostly one, sometimes two or none).
    """
    shape, spacing = _validated_geometry(shape, spacing)
    _validate_preset(preset)
    if preset == "study":
        if num_tumours is None:
            num_tumours = int(rng.choice(5, p=[0.1, 0.3, 0.25, 0.2, 0.15]))
        if num_tumours not in range(STUDY_MAX_TUMOURS + 1):
            raise ValueError(f"num_tumours must be 0 to {STUDY_MAX_TUMOURS} for the study preset, got {num_tumours!r}")
        return make_study_case(rng, shape, spacing, num_tumours)
    if num_tumours is None:
        num_tumours = int(rng.choice(3, p=[0.15, 0.6, 0.25]))
    if num_tumours not in (0, 1, 2):
        raise ValueError(f"num_tumours must be 0, 1 or 2, got {num_tumours!r}")
    return make_default_case(rng, shape, spacing, num_tumours)


def _validate_preset(preset) -> None:
    if preset not in PRESETS:
        raise UserFacingError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")


def _validated_geometry(shape, spacing) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    if len(shape) != 3 or any(int(n) != n or n < 8 for n in shape):
        raise UserFacingError(f"shape must be three integers >= 8 (z, y, x), got {shape!r}")
    if len(spacing) != 3 or any(not np.isfinite(s) or s <= 0 for s in spacing):
        raise UserFacingError(f"spacing must be three positive numbers in mm (z, y, x), got {spacing!r}")
    return tuple(int(n) for n in shape), tuple(float(s) for s in spacing)


def generate_synthetic_kidney_dataset(
    nnunet_raw: str | Path,
    dataset_id: int = 990,
    dataset_name: str = "SyntheticKidney",
    num_training_cases: int = 20,
    num_test_cases: int = 0,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing: tuple[float, float, float] = DEFAULT_SPACING,
    seed: int = 0,
    overwrite: bool = False,
    preset: str = "default",
) -> Path:
    """Write ``<nnunet_raw>/DatasetXXX_<dataset_name>`` in nnU-Net v2 raw format and return its path.

    Training cases go to imagesTr/labelsTr, test cases (images only) to imagesTs; case ids are
    ``kidney_000``, ``kidney_001``, ... with test cases numbered after the training cases. ``shape``
    and ``spacing`` are (z, y, x). An existing dataset folder is replaced only with
    ``overwrite=True``; another folder with the same dataset id is always refused, because nnU-Net
    finds datasets by id. The dataset is built in a hidden sibling folder and renamed into place at
    the end, so an interrupted run never leaves a half-written dataset under the real name.
    ``preset`` is ``default`` or ``study`` (see the module docstring).
    """
    _validate_dataset_args(num_training_cases, num_test_cases, seed)
    _validate_preset(preset)
    shape, spacing = _validated_geometry(shape, spacing)
    return write_raw_dataset(
        nnunet_raw,
        dataset_id,
        dataset_name,
        overwrite=overwrite,
        fill=lambda folder, target: _write_dataset(
            folder, target.name, num_training_cases, num_test_cases, shape, spacing, seed, preset
        ),
    )


def case_identifier(case_index: int) -> str:
    return f"{CASE_PREFIX}_{case_index:03d}"


def case_rng(seed: int, case_index: int) -> np.random.Generator:
    """Generator of one case; independent of how many cases the dataset has."""
    return np.random.default_rng([seed, case_index])


def _validate_dataset_args(num_training_cases, num_test_cases, seed) -> None:
    if not isinstance(num_training_cases, (int, np.integer)) or num_training_cases < 1:
        raise UserFacingError(f"num_training_cases must be a positive integer, got {num_training_cases!r}")
    if not isinstance(num_test_cases, (int, np.integer)) or num_test_cases < 0:
        raise UserFacingError(f"num_test_cases must be a non-negative integer, got {num_test_cases!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserFacingError(f"seed must be a non-negative integer, got {seed!r}")


def _write_dataset(folder: Path, name: str, num_training_cases, num_test_cases, shape, spacing, seed, preset) -> None:
    for sub in ("imagesTr", "labelsTr", "imagesTs") if num_test_cases else ("imagesTr", "labelsTr"):
        (folder / sub).mkdir()
    for case_index in range(num_training_cases + num_test_cases):
        is_training = case_index < num_training_cases
        rng = case_rng(seed, case_index)
        num_tumours = _scheduled_num_tumours(rng, case_index, preset)
        image, label = make_case(rng, shape, spacing, num_tumours=num_tumours, preset=preset)
        case_id = case_identifier(case_index)
        images_dir = folder / ("imagesTr" if is_training else "imagesTs")
        _write_volume(image, spacing, images_dir / f"{case_id}_0000{FILE_ENDING}")
        if is_training:
            _write_volume(label, spacing, folder / "labelsTr" / f"{case_id}{FILE_ENDING}")
    _write_dataset_json(folder, name, num_training_cases, num_test_cases, shape, spacing, seed, preset)


def _scheduled_num_tumours(rng: np.random.Generator, case_index: int, preset: str = "default") -> int:
    """0 for every fifth case, otherwise one tumour or (30 %) two; 1-4 for the study preset."""
    if case_index % TUMOUR_FREE_EVERY == TUMOUR_FREE_EVERY - 1:
        return 0
    if preset == "study":
        return 1 + int(rng.choice(STUDY_MAX_TUMOURS, p=[0.3, 0.3, 0.25, 0.15]))
    return 1 + int(rng.random() < 0.3)


def _write_volume(array: np.ndarray, spacing, path: Path) -> None:
    volume = sitk.GetImageFromArray(array)  # numpy (z, y, x) -> SimpleITK (x, y, z)
    spacing_xyz = tuple(reversed(spacing))
    volume.SetSpacing(spacing_xyz)
    # put the volume centre at the origin of the physical frame, as in synthetic_anatomy.voxel_centres_mm
    volume.SetOrigin(tuple(-(n - 1) / 2 * s for n, s in zip(volume.GetSize(), spacing_xyz)))
    volume.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(volume, str(path), useCompression=True)


def _write_dataset_json(folder: Path, name: str, num_training_cases, num_test_cases, shape, spacing, seed, preset):
    generate_dataset_json(
        str(folder),
        channel_names={0: "CT"},  # "CT" selects nnU-Net's CT intensity normalisation
        labels=dict(LABELS),  # a copy: generate_dataset_json edits the dict in place
        num_training_cases=num_training_cases,
        file_ending=FILE_ENDING,
        dataset_name=name,
        description=(
            f"Synthetic kidney and kidney-tumour CT phantoms ({preset} preset) made by "
            "nnunetv2_hlfd.dataset_writers.synthetic for demos, tests and studies; not patient data."
        ),
        license="CC0 (synthetic)",
        converted_by="nnunetv2_hlfd.dataset_writers.synthetic.generate_synthetic_kidney_dataset",
        # provenance, ignored by nnU-Net: enough to regenerate the exact same files
        synthetic_generator={
            "seed": int(seed),
            "preset": preset,
            "shape_zyx": list(shape),
            "spacing_zyx": list(spacing),
            "num_test_cases": int(num_test_cases),
        },
    )
