"""The synthetic phantoms' anatomy and its CT: an abdomen-shaped body of soft tissue in air, a bright vertebra,
two contrast-enhanced kidneys and 0-2 ellipsoid tumours growing from a kidney, blurred and with Gaussian noise
(the ``default`` preset; the ``study`` preset's lesions build on these organs in synthetic_study_preset.py).

All geometry is defined in millimetres, in a (z, y, x) frame centred on the volume, and only turned
into voxels through the spacing, so anisotropic spacing still gives physically round organs. The same
frame is written to the files (origin at minus half the extent, identity direction), so the physical
coordinates of every voxel in the NIfTI files are those the anatomy was drawn in. With the identity
direction SimpleITK reads the axes as LPS: +x is the patient's left, +y posterior, +z superior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

BACKGROUND, KIDNEY, TUMOR = 0, 1, 2
LABELS = {"background": BACKGROUND, "kidney": KIDNEY, "tumor": TUMOR}

AIR_HU = -1000.0
# int16 covers the usual CT range; clipping keeps rare noise outliers inside it
HU_CLIP = (-1024, 3071)
# Gaussian blur width (mm) standing in for the scanner's point spread / partial volume effect
BLUR_SIGMA_MM = 0.6

Z, Y, X = 0, 1, 2


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


def make_default_case(
    rng: np.random.Generator, shape: tuple[int, int, int], spacing: tuple[float, float, float], num_tumours: int
) -> tuple[np.ndarray, np.ndarray]:
    """One ``default`` preset case, (image int16 in HU, label uint8), both (z, y, x)."""
    grid_mm = voxel_centres_mm(shape, spacing)
    anatomy = sample_anatomy(rng, shape, spacing, num_tumours)
    intensities = sample_intensities(rng)
    masks = tissue_masks(anatomy, grid_mm)
    return _render_ct(masks, intensities, spacing, rng), _label_map(masks)


def voxel_centres_mm(shape, spacing) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Open (broadcastable) grid of voxel-centre coordinates in mm, zero at the volume centre."""
    axes = [(np.arange(n, dtype=np.float32) - (n - 1) / 2) * np.float32(s) for n, s in zip(shape, spacing)]
    return axes[Z][:, None, None], axes[Y][None, :, None], axes[X][None, None, :]


def _plane_rotation(axis_a: int, axis_b: int, angle_rad: float) -> np.ndarray:
    rotation = np.eye(3)
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    rotation[axis_a, axis_a], rotation[axis_a, axis_b] = c, -s
    rotation[axis_b, axis_a], rotation[axis_b, axis_b] = s, c
    return rotation


def small_rotation(rng: np.random.Generator, max_degrees: tuple[float, float, float]) -> np.ndarray:
    """Random rotation made of tilts up to the given angles in the (y,x), (z,x) and (z,y) planes."""
    yaw, roll, pitch = np.deg2rad(rng.uniform(-1, 1, 3) * np.asarray(max_degrees))
    return _plane_rotation(Y, X, yaw) @ _plane_rotation(Z, X, roll) @ _plane_rotation(Z, Y, pitch)


def sample_anatomy(rng: np.random.Generator, shape, spacing, num_tumours: int) -> Anatomy:
    extent_mm = np.asarray(shape) * np.asarray(spacing)
    body = sample_body(rng, in_plane_fov_mm=float(min(extent_mm[Y], extent_mm[X])))
    spine = sample_spine(rng, body)
    kidneys = sample_kidneys(rng, body, extent_mm)
    tumours = tuple(_sample_tumour(rng, kidneys[rng.integers(2)], spacing) for _ in range(num_tumours))
    return Anatomy(body, spine, kidneys, tumours)


def sample_body(rng: np.random.Generator, in_plane_fov_mm: float) -> Ellipsoid:
    """Abdomen cross-section: a slightly rotated ellipse, wider than deep, extruded along z."""
    semi_axes = np.array([np.inf, rng.uniform(0.33, 0.38), rng.uniform(0.42, 0.47)]) * in_plane_fov_mm
    centre = np.array([0.0, *rng.uniform(-0.02, 0.02, 2) * in_plane_fov_mm])
    return Ellipsoid(centre, semi_axes, _plane_rotation(Y, X, np.deg2rad(rng.uniform(-5, 5))))


def sample_spine(rng: np.random.Generator, body: Ellipsoid) -> Ellipsoid:
    """Vertebral body: a bright elliptic cylinder, posterior and central in the body."""
    centre = body.point_at(np.array([0.0, rng.uniform(0.5, 0.6), rng.uniform(-0.03, 0.03)]))
    radius = rng.uniform(0.15, 0.19) * body.semi_axes_mm[X]
    semi_axes = np.array([np.inf, radius * rng.uniform(0.85, 1.0), radius])
    return Ellipsoid(centre, semi_axes, np.eye(3))


def sample_kidneys(rng: np.random.Generator, body: Ellipsoid, extent_mm: np.ndarray) -> tuple[Ellipsoid, ...]:
    """Right and left kidney, lateral to the spine and posterior, long axis roughly craniocaudal."""
    return tuple(_sample_kidney(rng, body, extent_mm, side) for side in (-1.0, 1.0))  # -x: patient's right


def _sample_kidney(rng: np.random.Generator, body: Ellipsoid, extent_mm: np.ndarray, side: float) -> Ellipsoid:
    """One kidney on the given side (-1: patient's right, +1: left)."""
    body_rx = body.semi_axes_mm[X]
    # sizes scale with the body so the phantom looks alike at any field of view; the long axis is
    # also capped by the slab thickness so both poles stay inside the volume
    long_axis = min(rng.uniform(0.6, 0.72) * body_rx, 0.36 * extent_mm[Z])
    semi_axes = np.array([long_axis, rng.uniform(0.3, 0.36) * body_rx, rng.uniform(0.25, 0.3) * body_rx])
    rotation = small_rotation(rng, max_degrees=(20.0, 12.0, 8.0))

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
    return Ellipsoid(centre, semi_axes, small_rotation(rng, max_degrees=(90.0, 90.0, 90.0)))


def sample_intensities(rng: np.random.Generator) -> Intensities:
    # ranges keep kidney > tumour > soft tissue by >= 40 and >= 20 HU, as in venous-phase CT
    return Intensities(
        soft_tissue=rng.uniform(35, 50),
        bone=rng.uniform(350, 450),
        kidney=rng.uniform(140, 170),
        tumour=rng.uniform(70, 95),
        noise_sigma=rng.uniform(15, 25),
    )


def tissue_masks(anatomy: Anatomy, grid_mm) -> dict[str, np.ndarray]:
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
