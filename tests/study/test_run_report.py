"""The study's learning-curve figure (run_report.py): what each panel plots and labels, and the PNG it writes."""

from __future__ import annotations

import numpy as np
from figure_checks import axes_pixels, coloured_fraction, painted_fraction, pixel_size, read_png
from study_helpers import fake_settings

from nnunetv2_hlfd.study.curves import LearningCurve
from nnunetv2_hlfd.study.run_report import DPI, draw_learning_curves, learning_curve_figure
from nnunetv2_hlfd.study.runs import Run

CLASSES = ["kidney", "tumor"]


def run(variant: str, seed: int, tumour_curve: tuple[float, ...]) -> Run:
    """A finished run whose kidney pseudo-Dice is 0.9 every epoch and whose tumour one is `tumour_curve`."""
    epochs = len(tumour_curve)
    curve = LearningCurve((0.0,) * epochs, (0.0,) * epochs, tuple((0.9, v) for v in tumour_curve))
    return Run(variant, 0, seed, {"kidney": 0.9, "tumor": tumour_curve[-1]}, {}, curve)


RUNS = [
    run("nnUNetTrainerStudent", 0, (0.0, 0.1, 0.2)),
    run("nnUNetTrainerStudent", 1, (0.0, 0.3, 0.4)),
    run("nnUNetTrainerHLFD", 0, (0.1, 0.5, 0.7)),
    run("nnUNetTrainerHLFD", 1, (0.3, 0.5, 0.9)),
]


def test_each_class_has_a_panel_the_tumour_first_with_each_variants_median_curve():
    settings = fake_settings(iterations=10)
    figure = draw_learning_curves(RUNS, CLASSES, "tumor", settings)
    tumour, kidney = figure.axes
    titles = [axes.get_title() for axes in figure.axes]
    assert titles == ["tumor: median and range over runs", "kidney: median and range over runs"]
    legend = [text.get_text() for text in tumour.get_legend().get_texts()]
    assert legend == ["Student (n = 2 runs)", "HLFD (n = 2 runs)", "onset threshold"] and kidney.get_legend() is None
    student, hlfd = tumour.lines[:2]
    assert list(student.get_xdata()) == [10, 20, 30]  # epochs of 10 iterations
    np.testing.assert_allclose(student.get_ydata(), [0.0, 0.2, 0.3])
    np.testing.assert_allclose(hlfd.get_ydata(), [0.2, 0.5, 0.8])
    np.testing.assert_allclose(kidney.lines[0].get_ydata(), [0.9, 0.9, 0.9])
    assert len(tumour.collections) == len(kidney.collections) == 2  # a min-max band per variant


def test_no_curve_gives_no_figure_and_no_file(tmp_path):
    without = [Run(r.variant, r.fold, r.seed, r.final_dsc, r.case_dsc, None) for r in RUNS]
    assert draw_learning_curves(without, CLASSES, "tumor", fake_settings()) is None
    assert learning_curve_figure(tmp_path / "curves.png", without, CLASSES, "tumor", fake_settings()) is None
    assert not (tmp_path / "curves.png").exists()


def test_the_saved_picture_has_the_figures_size_and_a_curve_in_every_panel(tmp_path):
    settings = fake_settings(iterations=10)
    png = read_png(learning_curve_figure(tmp_path / "curves.png", RUNS, CLASSES, "tumor", settings))
    figure = draw_learning_curves(RUNS, CLASSES, "tumor", settings)
    assert png.shape[:2] == pixel_size(figure.get_size_inches(), DPI) == (552, 1440)  # two panels of 6 x 4.6 in
    figure.draw_without_rendering()  # lays the panels out as saving did
    for axes in figure.axes:
        pixels = axes_pixels(png, axes)
        # a blank panel (grid alone) is 0; one 1.8 pt line across the panel is about 0.007
        assert painted_fraction(pixels) > 0.002 and coloured_fraction(pixels) > 0.002, axes.get_title()
