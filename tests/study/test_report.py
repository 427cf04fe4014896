"""study.md's results table says what its DSC averages and over how many cases."""

from __future__ import annotations

import pandas as pd

from nnunetv2_hlfd.study.report import dsc_convention


def test_the_dsc_convention_and_n_per_class_are_named(tmp_path):
    columns = {
        "trainer": ["a", "b"],
        "dsc_kidney": [0.9, 0.8],
        "n_cases_dsc_kidney": [10, 10],
        "n_cases_dsc_tumor": [7, 7],
    }
    pd.DataFrame(columns).to_csv(tmp_path / "compression.csv", index=False)
    text = dsc_convention(tmp_path)
    assert "both empty counting as 1" in text and "kidney n = 10, tumor n = 7" in text
