"""One validation slice, side by side: the CT, the ground truth and each model's prediction (nnU-Net's own
validation outputs), as a reader checks a segmentation before trusting a table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from matplotlib import style
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from nnunetv2_hlfd.utilities.problems import UserFacingError

DPI = 120
WINDOW_HU = (-160, 240)  # a soft-tissue CT window
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd")  # label 1, 2, ... as overlays


def _read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def pick_case_and_slice(labels: dict[str, np.ndarray], label_value: int, slice_axis: int) -> tuple[str, int]:
    """The case with the most `label_value` voxels (any foreground if none has it) and its slice with the most."""

    def count(array: np.ndarray) -> int:
        return int((array == label_value).sum()) or int((array > 0).sum())

    case = max(labels, key=lambda c: count(labels[c]))
    target = labels[case] == label_value if (labels[case] == label_value).any() else labels[case] > 0
    per_slice = target.sum(axis=tuple(a for a in range(target.ndim) if a != slice_axis))
    return case, int(np.argmax(per_slice))


def validation_slice_figure(
    path: Path, raw_dataset: Path, models: dict[str, Path], slice_axis: int, label_value: int
) -> tuple[Path, str]:
    """Write `draw_validation_slice`'s figure to `path`. Returns (path, case)."""
    figure, case = draw_validation_slice(raw_dataset, models, slice_axis, label_value)
    with style.context("default"):
        figure.savefig(path, dpi=DPI)
    return path, case


def draw_validation_slice(
    raw_dataset: Path, models: dict[str, Path], slice_axis: int, label_value: int
) -> tuple[Figure, str]:
    """The figure and its case: `models` maps a name to its fold folder (validation/ holds nnU-Net's
    predictions); the case is the common validation case with the most `label_value` voxels, the slice the one
    (along `slice_axis`, the axis nnU-Net's 2d configuration slices) with the most."""
    dataset_json = json.loads((raw_dataset / "dataset.json").read_text())
    ending = dataset_json["file_ending"]
    predicted = [{p.name.removesuffix(ending) for p in (f / "validation").glob(f"*{ending}")} for f in models.values()]
    cases = sorted(set.intersection(*predicted)) if predicted else []
    if not cases:
        raise UserFacingError(f"no validation case predicted by every model ({', '.join(models)}); train them first")
    labels = {case: _read(raw_dataset / "labelsTr" / f"{case}{ending}") for case in cases}
    case, index = pick_case_and_slice(labels, label_value, slice_axis)
    image = np.take(_read(raw_dataset / "imagesTr" / f"{case}_0000{ending}"), index, axis=slice_axis)
    panels = {"ground truth": np.take(labels[case], index, axis=slice_axis)} | {
        name: np.take(_read(folder / "validation" / f"{case}{ending}"), index, axis=slice_axis)
        for name, folder in models.items()
    }
    names = {value: name for name, value in dataset_json["labels"].items() if value != 0}
    overlay = ListedColormap([COLOURS[(v - 1) % len(COLOURS)] for v in sorted(names)])
    with style.context("default"):
        figure = Figure(figsize=(3.0 * (len(panels) + 1), 3.6), layout="constrained")
        axes = figure.subplots(1, len(panels) + 1)
        axes[0].imshow(image, cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1])
        axes[0].set_title(f"CT ({WINDOW_HU[0]} to {WINDOW_HU[1]} HU)")
        for axis, (name, segmentation) in zip(axes[1:], panels.items()):
            axis.imshow(image, cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1])
            shown = np.ma.masked_where(segmentation == 0, segmentation)
            axis.imshow(shown, cmap=overlay, vmin=min(names) - 0.5, vmax=max(names) + 0.5, alpha=0.55)
            axis.set_title(name)
        for axis in axes:
            axis.set_xticks([])
            axis.set_yticks([])
        legend = [Patch(color=COLOURS[(v - 1) % len(COLOURS)], label=names[v]) for v in sorted(names)]
        figure.legend(handles=legend, loc="outside lower center", ncols=len(legend))
        figure.suptitle(f"validation case {case}, slice {index} (axis {slice_axis})")
    return figure, case
