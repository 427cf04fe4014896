"""The benchmark's figures (evaluation/figures.py) on a small per-case table: what each panel shows and labels,
and the PNGs write_figures saves."""

import numpy as np
import pandas as pd
import pytest
from figure_checks import axes_pixels, coloured_fraction, pixel_size, read_png

from nnunetv2_hlfd.evaluation.figures import DPI, draw_accuracy_versus_cost, draw_box_plot, write_figures

TRAINERS = ("nnUNetTrainer", "nnUNetTrainerStudent")
CLASSES = ("kidney", "tumor")
COSTS = ("parameters", "macs_per_patch", "volume_latency_s_cpu")


@pytest.fixture(scope="module")
def per_case() -> pd.DataFrame:
    """Four cases of each trainer and class; lesion F1 only for the tumour, as for a class without lesions."""
    rng = np.random.default_rng(0)
    rows = [
        {"trainer": t, "fold": 0, "case": f"case_{k}", "class": c, "dsc": rng.uniform(), "hd95": rng.uniform(1, 9)}
        | {"lesion_f1": rng.uniform() if c == "tumor" else np.nan}
        for t in TRAINERS
        for k in range(4)
        for c in CLASSES
    ]
    return pd.DataFrame(rows)


COMPRESSION = pd.DataFrame(
    {"trainer": TRAINERS, "parameters": [3e7, 1e6], "macs_per_patch": [1e10, 1e8], "volume_latency_s_cpu": [2.0, 0.5]}
)


def test_a_box_plot_has_a_panel_per_class_a_box_per_trainer_and_its_legend(per_case):
    figure = draw_box_plot(per_case, "dsc", "DSC")
    assert [axes.get_title() for axes in figure.axes] == list(CLASSES)
    assert {axes.get_ylabel() for axes in figure.axes} == {"DSC"}
    for axes in figure.axes:
        assert [tick.get_text() for tick in axes.get_xticklabels()] == [f"{t}\n(n=4)" for t in TRAINERS]
        assert len(axes.collections) == len(TRAINERS)  # each trainer's four cases as points
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["median", "mean", "one case"]


def test_a_class_without_values_gets_an_empty_box_and_n_0(per_case):
    kidney = draw_box_plot(per_case, "lesion_f1").axes[0]
    assert [tick.get_text() for tick in kidney.get_xticklabels()] == [f"{t}\n(n=0)" for t in TRAINERS]


def test_accuracy_against_cost_has_a_panel_per_cost_and_a_labelled_point_per_model(per_case):
    figure = draw_accuracy_versus_cost(COMPRESSION, per_case)
    assert len(figure.axes) == len(COSTS)
    assert [axes.get_xlabel() for axes in figure.axes][:2] == ["parameters", "multiply-adds per patch"]
    for axes in figure.axes:
        assert [text.get_text() for text in axes.texts] == list(TRAINERS)
        assert axes.get_xscale() == "log"


def test_the_saved_pictures_have_their_figures_size_and_no_blank_panel(per_case, tmp_path):
    paths = write_figures(tmp_path, per_case, ["dsc", "hd95"], COMPRESSION)
    assert [p.name for p in paths] == ["box_dsc.png", "box_hd95.png", "accuracy_vs_cost.png"]
    figures = [
        draw_box_plot(per_case, "dsc"),
        draw_box_plot(per_case, "hd95"),
        draw_accuracy_versus_cost(COMPRESSION, per_case),
    ]
    for path, figure in zip(paths, figures):
        png = read_png(path)
        assert png.shape[:2] == pixel_size(figure.get_size_inches(), DPI), path.name
        figure.draw_without_rendering()  # lays the panels out as saving did
        for axes in figure.axes:
            # coloured medians, means, cases and model points; 0 for a panel that plots nothing
            assert coloured_fraction(axes_pixels(png, axes)) > 0.001, (path.name, axes.get_title())
