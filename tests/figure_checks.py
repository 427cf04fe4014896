"""What a saved figure shows, read back from its PNG: its size in pixels and each panel's content (a helper
module for the figure tests; tests/ is on the import path through its conftest.py)."""

from pathlib import Path

import numpy as np
from matplotlib import image


def read_png(path: Path) -> np.ndarray:
    """The PNG's RGB pixels, (height, width, 3) in [0, 1]."""
    return image.imread(str(path))[..., :3]


def pixel_size(figsize: tuple[float, float], dpi: float) -> tuple[int, int]:
    """(height, width) in pixels of a figure of `figsize` inches saved at `dpi`."""
    return round(figsize[1] * dpi), round(figsize[0] * dpi)


def axes_pixels(png: np.ndarray, axes) -> np.ndarray:
    """The pixels inside a panel of the figure the PNG was saved from (its laid-out position), the frame left
    out so that an empty panel is one colour."""
    height, width = png.shape[:2]
    box = axes.get_position()
    top, bottom = round((1 - box.y1) * height) + 3, round((1 - box.y0) * height) - 3
    left, right = round(box.x0 * width) + 3, round(box.x1 * width) - 3
    return png[top:bottom, left:right]


def grid_cells(png: np.ndarray, columns: int, rows: int = 1) -> list[np.ndarray]:
    """The PNG cut into an equal grid, row by row: each cell holds one panel of a figure of that grid."""
    height, width = png.shape[:2]
    return [
        png[r * height // rows : (r + 1) * height // rows, c * width // columns : (c + 1) * width // columns]
        for r in range(rows)
        for c in range(columns)
    ]


def painted_fraction(pixels: np.ndarray) -> float:
    """The share of pixels that differ from the region's commonest colour (its background) by more than a
    light grid line does: 0 for a blank panel."""
    colours, counts = np.unique(pixels.reshape(-1, 3).round(2), axis=0, return_counts=True)
    background = colours[counts.argmax()]
    return float((np.abs(pixels - background).max(axis=-1) > 0.2).mean())


def coloured_fraction(pixels: np.ndarray) -> float:
    """The share of coloured pixels (not white, grey or black: data lines, boxes, markers and overlays, where
    text, axes and grid lines are grey): 0 for a panel that plots nothing."""
    return float((pixels.max(axis=-1) - pixels.min(axis=-1) > 0.25).mean())
