"""The distillation terms' panel under nnU-Net's progress plot (training/progress.py): one labelled line a term,
appended below the plot at its width."""

import matplotlib.pyplot as plt
import numpy as np
from figure_checks import coloured_fraction, read_png

from nnunetv2_hlfd.training.progress import _append_panel, _term_panel, term_figure

CURVES = {"UFD": [1.0, 0.6, 0.4], "IPD": [0.2, 0.15, 0.1]}


def test_each_term_is_a_labelled_line_of_its_epoch_means():
    figure = term_figure(CURVES)
    try:
        (axes,) = figure.axes
        assert [text.get_text() for text in axes.get_legend().get_texts()] == ["UFD (epoch mean)", "IPD (epoch mean)"]
        assert [list(line.get_ydata()) for line in axes.lines] == list(CURVES.values())
        assert [list(line.get_xdata()) for line in axes.lines] == [[0, 1, 2], [0, 1, 2]]
        assert axes.get_xlabel() == "epoch" and axes.get_ylabel() == "distillation term"
        assert tuple(figure.get_size_inches()) == (30, 12)  # nnU-Net's plot is 30 inches wide
    finally:
        plt.close(figure)


def test_the_panel_goes_below_the_plot_at_its_width(tmp_path):
    path = tmp_path / "progress.png"
    plot = np.random.default_rng(0).uniform(size=(50, 3000, 3))  # nnU-Net's plot, 3000 px wide at 100 dpi
    plt.imsave(path, plot)
    panel = _term_panel(CURVES)
    _append_panel(str(path), panel)
    png = read_png(path)
    assert png.shape[:2] == (50 + panel.shape[0], 3000) and panel.shape[1] == 3000
    np.testing.assert_allclose(png[:50], plot, atol=1 / 255)  # the plot itself unchanged
    np.testing.assert_allclose(png[50:], panel, atol=1 / 255)
    assert coloured_fraction(png[50:]) > 0.002  # the terms' lines, not an empty panel
