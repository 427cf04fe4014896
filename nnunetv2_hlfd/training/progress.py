"""nnU-Net's training log and progress plot, extended by the distillation terms."""

from __future__ import annotations

import os

import matplotlib
import numpy as np
from nnunetv2.training.logging.nnunet_logger import LocalLogger

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402

TERM_KEY_PREFIX = "distill_"


class DistillationLocalLogger(LocalLogger):
    """LocalLogger with one list per distillation term and a term panel under nnU-Net's plot."""

    def add_terms(self, term_names) -> None:
        for name in term_names:
            self.my_fantastic_logging.setdefault(TERM_KEY_PREFIX + name, [])

    def term_curves(self) -> dict[str, list]:
        return {
            k.removeprefix(TERM_KEY_PREFIX): v
            for k, v in self.my_fantastic_logging.items()
            if k.startswith(TERM_KEY_PREFIX)
        }

    def plot_progress_png(self, output_folder):
        super().plot_progress_png(output_folder)
        curves = {name: values for name, values in self.term_curves().items() if values}
        if curves:
            _append_panel(os.path.join(output_folder, "progress.png"), _term_panel(curves))


def term_figure(curves: dict[str, list]):
    """The terms' epoch means, one line a term, at the width of nnU-Net's figure (30 inches); the caller closes it."""
    fig, ax = plt.subplots(1, 1, figsize=(30, 12))
    for name, values in curves.items():
        ax.plot(range(len(values)), values, ls="-", label=f"{name} (epoch mean)", linewidth=4)
    ax.set_xlabel("epoch")
    ax.set_ylabel("distillation term")
    ax.legend(loc=(0, 1))
    fig.tight_layout()
    return fig


def _term_panel(curves: dict[str, list]) -> np.ndarray:
    """`term_figure` rendered to RGB pixels in [0, 1]."""
    fig = term_figure(curves)
    fig.canvas.draw()
    panel = np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255.0
    plt.close(fig)
    return panel


def _append_panel(png_path: str, panel: np.ndarray) -> None:
    plot = plt.imread(png_path)[..., :3]
    width = min(plot.shape[1], panel.shape[1])
    plt.imsave(png_path, np.concatenate([plot[:, :width], panel[:, :width]], axis=0))
