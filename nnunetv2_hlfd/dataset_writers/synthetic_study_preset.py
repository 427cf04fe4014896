"""The synthetic phantoms' ``study`` preset, hard enough that a small student can fall short of its teacher:
irregular (lobulated) tumours with heterogeneous texture and low, varied contrast (some nearly iso-dense), small
lesions, up to four per case and often several in one kidney, water-dense cysts that are kidney, not tumour, and a
smooth intensity inhomogeneity across the body; body, spine and kidneys are the default preset's
(synthetic_anatomy.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.ndimage import label as label_components

from nnunetv2_hlfd.dataset_writers.synthetic_anatomy import (
    AIR_HU,
    BLUR_SIGMA_MM,
    HU_CLIP,
    KIDNEY,
    TUMOR,
    Anatomy,
    Ellipsoid,
    X,
    Y,
    sample_body,
    sample_intensities,
    sample_kidneys,
    sample_spine,
    small_rotation,
    tissue_masks,
    voxel_centres_mm,
)

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


def make_study_case(rng: np.random.Generator, shape, spacing, num_tumours: int) -> tuple[np.ndarray, np.ndarray]:
    grid_mm = voxel_centres_mm(shape, spacing)
    extent_mm = np.asarray(shape) * np.asarray(spacing)
    body = sample_body(rng, in_plane_fov_mm=float(min(extent_mm[Y], extent_mm[X])))
    spine = sample_spine(rng, body)
    kidneys = sample_kidneys(rng, body, extent_mm)
    intensities = sample_intensities(rng)
    tumours = [
        _sample_study_tumour(rng, kidneys[k], spacing, intensities.kidney)
        for k in _study_lesion_kidneys(rng, num_tumours)
    ]
    cysts = [
        _sample_cyst(rng, kidneys[rng.integers(2)], spacing) for _ in range(rng.choice(4, p=[0.3, 0.3, 0.25, 0.15]))
    ]

    masks = tissue_masks(Anatomy(body, spine, kidneys, ()), grid_mm)
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
    outline = Ellipsoid(centre, semi_axes, small_rotation(rng, max_degrees=(90.0, 90.0, 90.0)))
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
