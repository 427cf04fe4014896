"""Label maps as nnU-Net reads them (ground truth, validation predictions, held-out test labels), and every
problem with one: it cannot be read to its end, it holds a value that is not a label of the dataset, or it
lies on another grid than the file it is scored against. The benchmark and the deployment comparison check
their files with these, each collecting the problems of all of them before anything is scored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunetv2_hlfd.dataset_writers.volume_files import failure_reason, read_to_the_end
from nnunetv2_hlfd.evaluation.model_folders import BenchmarkInputError

__all__ = [
    "GEOMETRY_TOLERANCE",
    "Segmentation",
    "grid_problems",
    "image_geometry",
    "read_segmentation",
    "reference_values",
    "value_problems",
]

# How far a label map's grid may lie from the one it is scored against: mm for spacing and origin,
# direction cosines unitless. NIfTI stores them as float32, ~1e-5 at a typical origin.
GEOMETRY_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Segmentation:
    """A label map in nnU-Net's (z, y, x) order and the grid it lies on: `geometry` holds the
    spacing in that order and, where the reader records them, origin and direction
    (SimpleITK) or the affine (nibabel), as the files give them."""

    array: np.ndarray
    geometry: dict[str, tuple[float, ...]]

    @property
    def spacing(self) -> tuple[float, ...]:
        return self.geometry["spacing"]


def image_geometry(properties: dict) -> dict[str, tuple[float, ...]]:
    geometry = {"spacing": tuple(float(s) for s in properties["spacing"])}
    sitk_stuff = properties.get("sitk_stuff", {})
    for key in ("origin", "direction"):
        if key in sitk_stuff:
            geometry[key] = tuple(float(v) for v in sitk_stuff[key])
    nibabel_stuff = properties.get("nibabel_stuff", {})
    if "original_affine" in nibabel_stuff:
        geometry["affine"] = tuple(np.asarray(nibabel_stuff["original_affine"], dtype=float).ravel().tolist())
    return geometry


def read_segmentation(path: Path, reader, fix: str = "write it again") -> Segmentation:
    """A label map and its grid, read as nnU-Net reads it; a file that cannot be read to its end
    (`volume_files.read_to_the_end`: nnU-Net's readers zero-fill a truncated file) is refused, named."""
    try:
        read_to_the_end(path)
        segmentation, properties = reader.read_seg(str(path))
    except Exception as error:  # the readers raise RuntimeError, OSError, EOFError, ValueError, ImageFileError...
        raise BenchmarkInputError(
            f"cannot read {path} ({failure_reason(error)}): the file is damaged or truncated; {fix}"
        ) from None
    return Segmentation(segmentation[0], image_geometry(properties))


def reference_values(labels: Iterable[int], ignore_label: int | None) -> list[int]:
    """The values a reference label map may hold: dataset.json's labels and its ignore label (unannotated)."""
    return [*labels, *(() if ignore_label is None else (ignore_label,))]


def value_problems(
    array: np.ndarray, allowed: Iterable[int], path: Path, what: str, dataset: str, fix: str
) -> list[str]:
    """The label map holds only the label values `allowed` (dataset.json's, with its ignore label where it
    may hold one)."""
    allowed = sorted(int(label) for label in allowed)
    # nnU-Net's readers return label maps as floats: "7", not "7.0", in the message
    unexpected = [f"{value:g}" for value in np.unique(array).tolist() if value not in allowed]
    if not unexpected:
        return []
    return [
        f"{what} {path} holds the values {', '.join(unexpected)}, which are not labels of {dataset} "
        f"({allowed}, as its dataset.json has); {fix}"
    ]


def grid_problems(ours: Segmentation, theirs: Segmentation, path: Path, what: str, against: str, fix: str) -> list[str]:
    """The label map `ours` lies on the grid of `theirs` (`against` names it): its shape, and the spacing,
    origin, direction or affine both files record."""
    if ours.array.shape != theirs.array.shape:
        return [
            f"{what} {path} has shape {tuple(ours.array.shape)} but {against} has {tuple(theirs.array.shape)}; {fix}"
        ]
    problems = []
    for key in sorted(set(ours.geometry) & set(theirs.geometry)):
        mine, other = ours.geometry[key], theirs.geometry[key]
        if len(mine) != len(other) or not np.allclose(mine, other, rtol=0, atol=GEOMETRY_TOLERANCE):
            problems.append(
                f"{what} {path} has the {key} {_rounded(mine)} but {against} has {_rounded(other)}: it lies on "
                f"another grid, so its voxels are not those of {against}; {fix}"
            )
    return problems


def _rounded(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"
