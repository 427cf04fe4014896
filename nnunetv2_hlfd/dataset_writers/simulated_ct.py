"""CT intensities simulated on real kidney-and-tumour label maps, in the study preset's appearance.

The KiTS19 manual segmentations are public in git, their CT images are a 30 GB download. This module gives a
label map a CT it could have come from, so a study can train on real geometry (shapes, sizes, positions,
anisotropy and class balance of real kidneys and tumours) without the images. What is drawn, per case:

- a soft-tissue background mixing fat and muscle through a smooth random field, with enhancing neighbours
  (bright blobs standing in for vessels, bowel, liver, spleen and bone) that no label predicts;
- kidneys with an enhancing cortex over a darker medulla (the late-arterial phase of KiTS19), a mild texture,
  and 0-3 water-dense cysts that stay kidney in the label, as in KiTS19;
- each tumour (one connected component of the tumour label) with its own contrast to the kidney, drawn as the
  synthetic study preset draws it: darker by a varied margin, nearly iso-dense (30 %), or brighter, with a
  smooth texture;
- a smooth intensity inhomogeneity, the scanner's blur, partial volume at every edge (rendered on a grid twice
  as fine and averaged down) and Gaussian noise.

The intensities are simulated; nothing about them is real. A plain intensity window cannot recover the
tumours from them (:func:`best_window_dice` measures how well one does).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt, gaussian_filter
from scipy.ndimage import label as label_components

from nnunetv2_hlfd.dataset_writers.synthetic_anatomy import BLUR_SIGMA_MM, HU_CLIP, KIDNEY, TUMOR
from nnunetv2_hlfd.dataset_writers.synthetic_study_preset import smooth_field, study_lesion_contrast

__all__ = ["SUPERSAMPLING", "best_window_dice", "render_ct", "simulated_ct"]

# the CT is rendered on a grid this many times finer per axis and averaged down: partial volume at the edges
SUPERSAMPLING = 2
MAX_CYSTS = 3


def render_ct(label: np.ndarray, spacing, rng: np.random.Generator) -> np.ndarray:
    """Noise-free, blurred CT (float32 HU) for ``label`` (0 background, 1 kidney, 2 tumour) on its own grid of
    ``spacing`` mm per axis (the array's axis order)."""
    spacing = np.asarray(spacing, dtype=float)
    shape = label.shape
    kidney, tumour = label == KIDNEY, label == TUMOR
    organ = kidney | tumour

    fat, muscle = rng.uniform(-110, -80), rng.uniform(35, 55)
    mix = 1.0 / (1.0 + np.exp(-2.5 * smooth_field(rng, shape, 6.0 / spacing)))
    image = (fat + (muscle - fat) * mix).astype(np.float32)

    # enhancing neighbours (vessels, bowel wall, liver and spleen edges, bone) as bright blobs away from the
    # kidneys, so a window on the kidney's HU also takes in tissue that is not kidney
    neighbours = (smooth_field(rng, shape, 5.0 / spacing) > rng.uniform(1.0, 1.4)) & ~organ
    image[neighbours] = rng.uniform(110, 230) + smooth_field(rng, shape, 2.0 / spacing)[neighbours] * 15

    cortex_hu = rng.uniform(150, 200)
    medulla_hu = cortex_hu - rng.uniform(30, 70)
    depth_mm = distance_transform_edt(organ, sampling=spacing)
    cortex = kidney & (depth_mm <= rng.uniform(3.0, 6.0))
    parenchyma = np.where(cortex, cortex_hu, medulla_hu).astype(np.float32)
    parenchyma += smooth_field(rng, shape, 1.5 / spacing) * rng.uniform(5, 12)
    image[kidney] = parenchyma[kidney]
    for cyst in _cysts(rng, kidney, spacing):
        image[cyst] = rng.uniform(0, 20)

    kidney_hu = float(image[kidney].mean()) if kidney.any() else cortex_hu
    lesions, count = label_components(tumour)
    for index in range(1, count + 1):
        lesion = lesions == index
        texture = smooth_field(rng, shape, 1.5 / spacing) * rng.uniform(8, 20)
        image[lesion] = kidney_hu - study_lesion_contrast(rng) + texture[lesion]

    bias = smooth_field(rng, shape, 0.3 * float(min(np.asarray(shape) * spacing)) / spacing)
    image += rng.uniform(20, 45) * bias / max(float(np.abs(bias).max()), 1e-6)
    return gaussian_filter(image, sigma=BLUR_SIGMA_MM / spacing, mode="nearest").astype(np.float32)


def _cysts(rng: np.random.Generator, kidney: np.ndarray, spacing: np.ndarray) -> list[np.ndarray]:
    """0-3 round lesions inside the kidney (interior voxels as centres, so a cyst is not a rim)."""
    interior = np.argwhere(binary_erosion(kidney, iterations=2))
    if not len(interior):
        return []
    grid = np.indices(kidney.shape, sparse=True)
    cysts = []
    for _ in range(rng.choice(MAX_CYSTS + 1, p=[0.3, 0.3, 0.25, 0.15])):
        centre = interior[rng.integers(len(interior))]
        radius_mm = rng.uniform(3.0, 10.0)
        distance_sq = sum(((axis - c) * s) ** 2 for axis, c, s in zip(grid, centre, spacing))
        cysts.append(kidney & (distance_sq <= radius_mm**2))
    return cysts


def simulated_ct(fine_label: np.ndarray, fine_spacing, rng: np.random.Generator, factor: int = SUPERSAMPLING):
    """int16 CT on the grid ``factor`` times coarser per axis than ``fine_label``'s (its shape must divide):
    rendered fine, averaged down (partial volume), then noise at the coarse grid's resolution."""
    if any(n % factor for n in fine_label.shape):
        raise ValueError(f"the fine label's shape {fine_label.shape} is not a multiple of {factor} on every axis")
    fine = render_ct(fine_label, fine_spacing, rng)
    coarse_shape = tuple(n // factor for n in fine.shape)
    blocks = fine.reshape([d for n in coarse_shape for d in (n, factor)])
    image = blocks.mean(axis=tuple(range(1, 2 * fine.ndim, 2)))
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(rng.uniform(15, 25))
    return np.clip(np.rint(image), *HU_CLIP).astype(np.int16)


def best_window_dice(images, labels, label_value: int, step_hu: float = 10.0) -> tuple[float, tuple[float, float]]:
    """The best Dice any one intensity window [low, high] reaches for ``label_value`` over all cases pooled,
    and that window: what a plain threshold gets from the images, the floor a network must beat by far."""
    values = np.concatenate([np.asarray(image, dtype=np.float32).ravel() for image in images])
    target = np.concatenate([np.asarray(label).ravel() == label_value for label in labels])
    edges = np.arange(np.floor(values.min() / step_hu) * step_hu, values.max() + 2 * step_hu, step_hu)
    positives, _ = np.histogram(values[target], bins=edges)
    everything, _ = np.histogram(values, bins=edges)
    # every window is a run of bins: prefix sums give its true and all positives at once
    true_cumulative = np.concatenate([[0], np.cumsum(positives)])
    all_cumulative = np.concatenate([[0], np.cumsum(everything)])
    true_positive = true_cumulative[None, :] - true_cumulative[:, None]
    predicted = all_cumulative[None, :] - all_cumulative[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(predicted > 0, 2 * true_positive / (predicted + target.sum()), 0.0)
    dice = np.triu(dice, 1)
    low, high = np.unravel_index(int(np.argmax(dice)), dice.shape)
    return float(dice[low, high]), (float(edges[low]), float(edges[high]))
