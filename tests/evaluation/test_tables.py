"""Markdown tables of the benchmark's numbers and the one p-value format."""

import pandas as pd

from nnunetv2_hlfd.evaluation.tables import TableColumn, format_p_value, render_markdown_table

SUMMARY = pd.DataFrame(
    [
        {
            "trainer": "teacher",
            "class": "tumour",
            "metric": "dsc",
            "case_mean": 0.8123,
            "case_std": 0.1049,
            "fold_mean": 0.81,
            "fold_std": 0.02,
            "n_valid": 9,
            "n_folds": 5,
        },
        {
            "trainer": "hlfd",
            "class": "tumour",
            "metric": "dsc",
            "case_mean": 0.7751,
            "case_std": 0.1203,
            "fold_mean": 0.77,
            "fold_std": float("nan"),
            "n_valid": 7,
            "n_folds": 1,
        },
    ]
)


COMPARISONS = pd.DataFrame(
    [{"trainer": "hlfd", "reference": "teacher", "class": "tumour", "metric": "dsc", "p_holm": 0.0004}]
)


TUMOUR_DSC = TableColumn("Tumour DSC", "tumour", "dsc")


def test_markdown_table_shows_mean_std_and_the_number_of_cases():
    lines = render_markdown_table(SUMMARY, [TUMOUR_DSC]).splitlines()
    assert lines[0] == "| Trainer | Tumour DSC |"
    assert lines[2] == "| teacher | 0.812 ± 0.105 (n=9) |"


def test_markdown_table_can_show_fold_spread_with_the_number_of_folds_and_scale_to_percent():
    column = TableColumn("Tumour DSC (%)", "tumour", "dsc", decimals=1, scale=100)
    lines = render_markdown_table(SUMMARY, [column], spread="folds").splitlines()
    assert lines[2] == "| teacher | 81.0 ± 2.0 (n=5) |"
    assert lines[3] == "| hlfd | 77.0 ± n/a (n=1) |"


def test_markdown_table_adds_holm_p_values_and_marks_the_reference():
    lines = render_markdown_table(SUMMARY, [TUMOUR_DSC], COMPARISONS).splitlines()
    assert lines[0].endswith("| p (Tumour DSC) |")
    assert lines[2].endswith("| ref |")
    assert lines[3] == "| hlfd | 0.775 ± 0.120 (n=7) | <0.001 |"


def test_p_values_print_with_three_decimals():
    assert format_p_value(0.04321) == "0.043"
