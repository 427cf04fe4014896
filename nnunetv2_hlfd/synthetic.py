"""Synthetic kidney-and-tumour CT dataset in nnU-Net v2's raw format.

The demo and the integration tests need a KiTS-like dataset without downloading anything, so this
module draws small CT-like phantoms: an abdomen-shaped body of soft tissue in air, a bright vertebra,
two contrast-enhanced kidneys and 0-2 tumours growing from a kidney, blurred and with Gaussian noise.

All geometry is defined in millimetres, in a (z, y, x) frame centred on the volume, and only turned
into voxels through the spacing, so anisotropic spacing still gives physically round organs. The same
frame is written to the files (origin at minus half the extent, identity direction), so the physical
coordinates of every voxel in the NIfTI files are those the anatomy was drawn in. With the identity
direction SimpleITK reads the axes as LPS: +x is the patient's left, +y posterior, +z superior.

Every case draws from its own ``numpy.random.Generator`` seeded by ``(seed, case index)``, so a dataset
is exactly reproducible and one case does not change when the number of cases does.

Two presets: ``default`` (ellipsoid tumours of clear contrast, learnable in a few hundred iterations,
for the demo's kidneys and the tests) and ``study``, hard enough that a small student can fall short
of its teacher: irregular (lobulated) tumours with heterogeneous texture and low, varied contrast
(some nearly iso-dense), small lesions, up to four per case and often several in one kidney, water-dense
cysts that are kidney, not tumour, and a smooth intensity inhomogeneity across the body.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json
from scipy.ndimage import gaussian_filter
from scipy.ndimage import label as label_components

from nnunetv2_hlfd.problems import UserFacingError
from nnunetv2_hlfd.raw_dataset import write_raw_dataset

__all__ = ["LABELS", "PRESETS", "generate_synthetic_kidney_dataset", "make_case"]

BACKGROUND, KIDNEY, TUMOR = 0, 1, 2
LABELS = {"background": BACKGROUND, "kidney": KIDNEY, "tumor": TUMOR}
FILE_ENDING = ".nii.gz"
CASE_PREFIX = "kidney"

DEFAULT_SHAPE = (24, 96, 96)
DEFAULT_SPACING = (3.0, 0.8, 0.8)

AIR_HU = -1000.0
# int16 covers the usual CT range; clipping keeps rare noise outliers inside it
HU_CLIP = (-1024, 3071)
# Gaussian blur width (mm) standing in for the scanner's point spread / partial volume effect
BLUR_SIGMA_MM = 0.6
# every fifth case has no tumour, so a dataset always has mostly tumour cases (the class stays
# learnable) and, from five cases on, at least one tumour-free kidney pair, as in real cohorts
TUMOUR_FREE_EVERY = 5

Z, Y, X = 0, 1, 2

PRESETS = ("default", "study")


@dataclass(frozen=True)
class Ellipsoid:
    """A solid ellipsoid in millimetres, in the (z, y, x) frame centred on the volume.

    ``rotation`` holds the ellipsoid's own axes as columns, in world (z, y, x) coordinates; an
    infinite semi-axis gives an elliptic cylinder along that axis (used for the body and spine).
    """

    centre_mm: np.ndarray
    semi_axes_mm: np.ndarray
    rotation: np.ndarray

    def mask(self, grid_mm: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        offsets = [axis_mm - c for axis_mm, c in zip(grid_mm, self.centre_mm)]
        normalised_sq = 0.0
        for own_axis in range(3):
            # coordinate along the ellipsoid's own axis = projection of the offset onto it
            along = sum(self.rotation[world, own_axis] * offsets[world] for world in range(3))
            normalised_sq = normalised_sq + (along / self.semi_axes_mm[own_axis]) ** 2
        return normalised_sq <= 1.0

    def normalised_radius(self, grid_mm: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """Distance from the centre in units of the ellipsoid's own radius in that direction (1 on the surface)."""
        offsets = [axis_mm - c for axis_mm, c in zip(grid_mm, self.centre_mm)]
        along = [sum(self.rotation[world, own] * offsets[world] for world in range(3)) for own in range(3)]
        return np.sqrt(sum((a / r) ** 2 for a, r in zip(along, self.semi_axes_mm)))

    def half_extent_mm(self) -> np.ndarray:
        """Half size of the axis-aligned bounding box (finite semi-axes only)."""
        return np.sqrt(((self.rotation * self.semi_axes_mm) ** 2).sum(axis=1))

    def point_at(self, local_fraction: np.ndarray) -> np.ndarray:
        """World position of a point given in units of the semi-axes (|fraction| <= 1 is inside).

        Infinite (cylinder) axes contribute nothing, instead of the NaN that 0 * inf would give.
        """
        finite_semi_axes = np.where(np.isinf(self.semi_axes_mm), 0.0, self.semi_axes_mm)
        return self.centre_mm + self.rotation @ (local_fraction * finite_semi_axes)


@dataclass(frozen=True)
class Intensities:
    """Mean HU of each tissue in one case, and the noise level."""

    soft_tissue: float
    bone: float
    kidney: float
    tumour: float
    noise_sigma: float


@dataclass(frozen=True)
class Anatomy:
    body: Ellipsoid
    spine: Ellipsoid
    kidneys: tuple[Ellipsoid, ...]
    tumours: tuple[Ellipsoid, ...]


# --------------------------------------------------------------------------------------------
# single case
# --------------------------------------------------------------------------------------------


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
        return _make_study_case(rng, shape, spacing, num_tumours)
    if num_tumours is None:
        num_tumours = int(rng.choice(3, p=[0.15, 0.6, 0.25]))
    if num_tumours not in (0, 1, 2):
        raise ValueError(f"num_tumours must be 0, 1 or 2, got {num_tumours!r}")

    grid_mm = _voxel_centres_mm(shape, spacing)
    anatomy = _sample_anatomy(rng, shape, spacing, num_tumours)
    intensities = _sample_intensities(rng)
    masks = _tissue_masks(anatomy, grid_mm)
    label = _label_map(masks)
    image = _render_ct(masks, intensities, spacing, rng)
    return image, label


def _validate_preset(preset) -> None:
    if preset not in PRESETS:
        raise UserFacingError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")


def _validated_geometry(shape, spacing) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    if len(shape) != 3 or any(int(n) != n or n < 8 for n in shape):
        raise UserFacingError(f"shape must be three integers >= 8 (z, y, x), got {shape!r}")
    if len(spacing) != 3 or any(not np.isfinite(s) or s <= 0 for s in spacing):
        raise UserFacingError(f"spacing must be three positive numbers in mm (z, y, x), got {spacing!r}")
    return tuple(int(n) for n in shape), tuple(float(s) for s in spacing)


def _voxel_centres_mm(shape, spacing) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Open (broadcastable) grid of voxel-centre coordinates in mm, zero at the volume centre."""
    axes = [(np.arange(n, dtype=np.float32) - (n - 1) / 2) * np.float32(s) for n, s in zip(shape, spacing)]
    return axes[Z][:, None, None], axes[Y][None, :, None], axes[X][None, None, :]


def _plane_rotation(axis_a: int, axis_b: int, angle_rad: float) -> np.ndarray:
    rotation = np.eye(3)
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    rotation[axis_a, axis_a], rotation[axis_a, axis_b] = c, -s
    rotation[axis_b, axis_a], rotation[axis_b, axis_b] = s, c
    return rotation


def _small_rotation(rng: np.random.Generator, max_degrees: tuple[float, float, float]) -> np.ndarray:
    """Random rotation made of tilts up to the given angles in the (y,x), (z,x) and (z,y) planes."""
    yaw, roll, pitch = np.deg2rad(rng.uniform(-1, 1, 3) * np.asarray(max_degrees))
    return _plane_rotation(Y, X, yaw) @ _plane_rotation(Z, X, roll) @ _plane_rotation(Z, Y, pitch)


def _sample_anatomy(rng: np.random.Generator, shape, spacing, num_tumours: int) -> Anatomy:
    extent_mm = np.asarray(shape) * np.asarray(spacing)
    body = _sample_body(rng, in_plane_fov_mm=float(min(extent_mm[Y], extent_mm[X])))
    spine = _sample_spine(rng, body)
    kidneys = _sample_kidneys(rng, body, extent_mm)
    tumours = tuple(_sample_tumour(rng, kidneys[rng.integers(2)], spacing) for _ in range(num_tumours))
    return Anatomy(body, spine, kidneys, tumours)


def _sample_body(rng: np.random.Generator, in_plane_fov_mm: float) -> Ellipsoid:
    """Abdomen cross-section: a slightly rotated ellipse, wider than deep, extruded along z."""
    semi_axes = np.array([np.inf, rng.uniform(0.33, 0.38), rng.uniform(0.42, 0.47)]) * in_plane_fov_mm
    centre = np.array([0.0, *rng.uniform(-0.02, 0.02, 2) * in_plane_fov_mm])
    return Ellipsoid(centre, semi_axes, _plane_rotation(Y, X, np.deg2rad(rng.uniform(-5, 5))))


def _sample_spine(rng: np.random.Generator, body: Ellipsoid) -> Ellipsoid:
    """Vertebral body: a bright elliptic cylinder, posterior and central in the body."""
    centre = body.point_at(np.array([0.0, rng.uniform(0.5, 0.6), rng.uniform(-0.03, 0.03)]))
    radius = rng.uniform(0.15, 0.19) * body.semi_axes_mm[X]
    semi_axes = np.array([np.inf, radius * rng.uniform(0.85, 1.0), radius])
    return Ellipsoid(centre, semi_axes, np.eye(3))


def _sample_kidneys(rng: np.random.Generator, body: Ellipsoid, extent_mm: np.ndarray) -> tuple[Ellipsoid, ...]:
    """Right and left kidney, lateral to the spine and posterior, long axis roughly craniocaudal."""
    return tuple(_sample_kidney(rng, body, extent_mm, side) for side in (-1.0, 1.0))  # -x: patient's right


def _sample_kidney(rng: np.random.Generator, body: Ellipsoid, extent_mm: np.ndarray, side: float) -> Ellipsoid:
    """One kidney on the given side (-1: patient's right, +1: left)."""
    body_rx = body.semi_axes_mm[X]
    # sizes scale with the body so the phantom looks alike at any field of view; the long axis is
    # also capped by the slab thickness so both poles stay inside the volume
    long_axis = min(rng.uniform(0.6, 0.72) * body_rx, 0.36 * extent_mm[Z])
    semi_axes = np.array([long_axis, rng.uniform(0.3, 0.36) * body_rx, rng.uniform(0.25, 0.3) * body_rx])
    rotation = _small_rotation(rng, max_degrees=(20.0, 12.0, 8.0))

    centre = body.point_at(np.array([0.0, rng.uniform(0.05, 0.2), side * rng.uniform(0.5, 0.56)]))
    # the right kidney sits a little lower (more inferior, -z) than the left one, under the liver
    inferior_shift = 0.05 * extent_mm[Z] if side < 0 else 0.0
    centre[Z] = rng.uniform(-0.05, 0.05) * extent_mm[Z] - inferior_shift
    kidney = Ellipsoid(centre, semi_axes, rotation)

    # keep both poles inside the slab (z is the axis where the volume is tightest)
    room = extent_mm[Z] / 2 - kidney.half_extent_mm()[Z]
    centre[Z] = np.clip(centre[Z], -max(room, 0.0), max(room, 0.0))
    return Ellipsoid(centre, semi_axes, rotation)


def _sample_tumour(rng: np.random.Generator, kidney: Ellipsoid, spacing) -> Ellipsoid:
    """A tumour centred inside the kidney, from small to almost the kidney's width.

    The centre lies at most about half way to the kidney surface and the radius is at most 1.2 times the
    kidney's short semi-axis, so a tumour may bulge out (exophytic, as many renal tumours are) but stays
    anchored in the kidney, whose longer axes leave kidney tissue beside it.
    """
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    centre = kidney.point_at(direction * rng.uniform(0.15, 0.55))

    smallest_kidney_axis = float(kidney.semi_axes_mm.min())
    # log-uniform radius: small and large tumours are equally common; from 0.6 of the kidney's short semi-axis,
    # so a short CPU run learns them (from 0.3, a teacher found none in 360 iterations: docs/RESULTS.md)
    radius = smallest_kidney_axis * np.exp(rng.uniform(np.log(0.6), np.log(1.2)))
    semi_axes = radius * rng.uniform(0.85, 1.15, 3)
    # at least half a voxel diagonal, so even the smallest tumour covers a voxel centre
    semi_axes = np.maximum(semi_axes, 0.5 * float(np.linalg.norm(spacing)))
    return Ellipsoid(centre, semi_axes, _small_rotation(rng, max_degrees=(90.0, 90.0, 90.0)))


def _sample_intensities(rng: np.random.Generator) -> Intensities:
    # ranges keep kidney > tumour > soft tissue by >= 40 and >= 20 HU, as in venous-phase CT
    return Intensities(
        soft_tissue=rng.uniform(35, 50),
        bone=rng.uniform(350, 450),
        kidney=rng.uniform(140, 170),
        tumour=rng.uniform(70, 95),
        noise_sigma=rng.uniform(15, 25),
    )


def _tissue_masks(anatomy: Anatomy, grid_mm) -> dict[str, np.ndarray]:
    body = anatomy.body.mask(grid_mm)
    kidney = np.zeros_like(body)
    for organ in anatomy.kidneys:
        kidney |= organ.mask(grid_mm)
    tumour = np.zeros_like(body)
    for lesion in anatomy.tumours:
        tumour |= lesion.mask(grid_mm)
    # nothing grows into air: organs are clipped to the body outline
    kidney &= body
    tumour &= body
    return {"body": body, "spine": anatomy.spine.mask(grid_mm) & body, "kidney": kidney, "tumour": tumour}


def _label_map(masks: dict[str, np.ndarray]) -> np.ndarray:
    label = np.zeros(masks["body"].shape, dtype=np.uint8)
    label[masks["kidney"]] = KIDNEY
    label[masks["tumour"]] = TUMOR  # painted last: tumour overrides kidney
    return label


def _render_ct(masks, intensities: Intensities, spacing, rng: np.random.Generator) -> np.ndarray:
    image = np.full(masks["body"].shape, AIR_HU, dtype=np.float32)
    # later tissues overwrite earlier ones, in the same order as the labels
    image[masks["body"]] = intensities.soft_tissue
    image[masks["spine"]] = intensities.bone
    image[masks["kidney"]] = intensities.kidney
    image[masks["tumour"]] = intensities.tumour
    # blur first (partial volume), then add noise, so the noise keeps the sampled sigma
    image = gaussian_filter(image, sigma=[BLUR_SIGMA_MM / s for s in spacing], mode="nearest")
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(intensities.noise_sigma)
    return np.clip(np.rint(image), *HU_CLIP).astype(np.int16)


# --------------------------------------------------------------------------------------------
# study preset
# --------------------------------------------------------------------------------------------

STUDY_MAX_TUMOURS = 4
# the chance that each further lesion grows in the same kidney as the one before
STUDY_SAME_KIDNEY = 0.6
# fraction of lesions nearly iso-dense with the kidney (|contrast| below about half the noise)
STUDY_ISO_DENSE = 0.3


@dataclass(frozen=True)
class StudyLesion:
    """A lobulated lesion: an ellipsoid whose radius is perturbed by a smooth random field."""

    outline: Ellipsoid
    lobulation: float  # amplitude of the radius perturbation, as a fraction of the radius
    mean_hu: float
    texture_hu: float  # standard deviation of the smooth texture inside the lesion


def _make_study_case(rng: np.random.Generator, shape, spacing, num_tumours: int) -> tuple[np.ndarray, np.ndarray]:
    grid_mm = _voxel_centres_mm(shape, spacing)
    extent_mm = np.asarray(shape) * np.asarray(spacing)
    body = _sample_body(rng, in_plane_fov_mm=float(min(extent_mm[Y], extent_mm[X])))
    spine = _sample_spine(rng, body)
    kidneys = _sample_kidneys(rng, body, extent_mm)
    intensities = _sample_intensities(rng)
    tumours = [
        _sample_study_tumour(rng, kidneys[k], spacing, intensities.kidney)
        for k in _study_lesion_kidneys(rng, num_tumours)
    ]
    cysts = [
        _sample_cyst(rng, kidneys[rng.integers(2)], spacing) for _ in range(rng.choice(4, p=[0.3, 0.3, 0.25, 0.15]))
    ]

    masks = _tissue_masks(Anatomy(body, spine, kidneys, ()), grid_mm)
    tumour_masks = [_lobulated_mask(rng, lesion, grid_mm, spacing) & masks["body"] for lesion in tumours]
    # cysts lie inside the kidney and stay kidney in the label map (as in KiTS19), only their HU differ
    cyst_masks = [_lobulated_mask(rng, lesion, grid_mm, spacing) & masks["kidney"] for lesion in cysts]

    label = np.zeros(shape, dtype=np.uint8)
    label[masks["kidney"]] = KIDNEY
    image = np.full(shape, AIR_HU, dtype=np.float32)
    image[masks["body"]] = intensities.soft_tissue
    image[masks["spine"]] = intensities.bone
    image[masks["kidney"]] = intensities.kidney
    for lesion, mask in zip(cysts + tumours, cyst_masks + tumour_masks):
        texture = smooth_field(rng, shape, [1.5 / s for s in spacing]) * lesion.texture_hu
        image[mask] = lesion.mean_hu + texture[mask]
    for mask in tumour_masks:
        label[mask] = TUMOR
    # smooth additive bias over the body (scanner inhomogeneity, beam hardening), then blur and noise
    bias = smooth_field(rng, shape, [0.3 * min(extent_mm) / s for s in spacing])
    image[masks["body"]] += rng.uniform(20, 45) * (bias / np.abs(bias).max())[masks["body"]]
    image = gaussian_filter(image, sigma=[BLUR_SIGMA_MM / s for s in spacing], mode="nearest")
    image += rng.standard_normal(shape, dtype=np.float32) * np.float32(intensities.noise_sigma)
    return np.clip(np.rint(image), *HU_CLIP).astype(np.int16), label


def _study_lesion_kidneys(rng: np.random.Generator, num_tumours: int) -> list[int]:
    """Which kidney (0 right, 1 left) each tumour grows in; often several in the same one."""
    kidneys = []
    for _ in range(num_tumours):
        same = kidneys and rng.random() < STUDY_SAME_KIDNEY
        kidneys.append(kidneys[-1] if same else int(rng.integers(2)))
    return kidneys


def _sample_study_tumour(rng: np.random.Generator, kidney: Ellipsoid, spacing, kidney_hu: float) -> StudyLesion:
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    centre = kidney.point_at(direction * rng.uniform(0.1, 0.6))
    # log-uniform from small (a fraction of the kidney's width) to about the kidney's half width
    radius = float(kidney.semi_axes_mm.min()) * np.exp(rng.uniform(np.log(0.18), np.log(0.85)))
    semi_axes = np.maximum(radius * rng.uniform(0.7, 1.3, 3), 0.5 * float(np.linalg.norm(spacing)))
    outline = Ellipsoid(centre, semi_axes, _small_rotation(rng, max_degrees=(90.0, 90.0, 90.0)))
    return StudyLesion(
        outline,
        lobulation=rng.uniform(0.25, 0.45),
        mean_hu=kidney_hu - study_lesion_contrast(rng),
        texture_hu=rng.uniform(8, 20),
    )


def study_lesion_contrast(rng: np.random.Generator) -> float:
    """HU below the kidney of one tumour: darker by a varied margin, nearly iso-dense, or (rarely) brighter."""
    kind = rng.choice(3, p=[1 - STUDY_ISO_DENSE - 0.15, STUDY_ISO_DENSE, 0.15])
    return float((rng.uniform(15, 70), rng.uniform(-10, 10), -rng.uniform(10, 30))[kind])


def _sample_cyst(rng: np.random.Generator, kidney: Ellipsoid, spacing) -> StudyLesion:
    """A round, homogeneous, water-dense lesion (a simple renal cyst)."""
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    centre = kidney.point_at(direction * rng.uniform(0.1, 0.6))
    radius = float(kidney.semi_axes_mm.min()) * rng.uniform(0.2, 0.5)
    semi_axes = np.maximum(radius * rng.uniform(0.9, 1.1, 3), 0.5 * float(np.linalg.norm(spacing)))
    return StudyLesion(
        Ellipsoid(centre, semi_axes, np.eye(3)), lobulation=0.0, mean_hu=rng.uniform(0, 20), texture_hu=0.0
    )


def _lobulated_mask(rng: np.random.Generator, lesion: StudyLesion, grid_mm, spacing) -> np.ndarray:
    """Inside where the normalised radius is below 1 + lobulation x a smooth field (kept >= 0.5: the centre
    stays in)."""
    shape = tuple(len(axis.ravel()) for axis in grid_mm)
    field = smooth_field(rng, shape, [0.5 * float(lesion.outline.semi_axes_mm.mean()) / s for s in spacing])
    limit = np.maximum(1.0 + lesion.lobulation * field, 0.5)
    inside = lesion.outline.normalised_radius(grid_mm) <= limit
    # the field can pinch off islands; one lesion is one connected piece (the largest)
    pieces, count = label_components(inside)
    if count <= 1:
        return inside
    return pieces == 1 + int(np.argmax(np.bincount(pieces.ravel())[1:]))


def smooth_field(rng: np.random.Generator, shape, sigma_voxels) -> np.ndarray:
    """Gaussian-smoothed white noise with zero mean and unit standard deviation."""
    field = gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma=sigma_voxels, mode="reflect")
    return (field - field.mean()) / max(float(field.std()), 1e-6)


# --------------------------------------------------------------------------------------------
# dataset
# --------------------------------------------------------------------------------------------


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
    # put the volume centre at the origin of the physical frame, as in _voxel_centres_mm
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
            "nnunetv2_hlfd.synthetic for demos, tests and studies; not patient data."
        ),
        license="CC0 (synthetic)",
        converted_by="nnunetv2_hlfd.synthetic.generate_synthetic_kidney_dataset",
        # provenance, ignored by nnU-Net: enough to regenerate the exact same files
        synthetic_generator={
            "seed": int(seed),
            "preset": preset,
            "shape_zyx": list(shape),
            "spacing_zyx": list(spacing),
            "num_test_cases": int(num_test_cases),
        },
    )
