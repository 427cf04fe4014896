"""The benchmark's analysis of its per-case table: DSC by tumour size, the values lost to NaN, the lesions pooled."""

import numpy as np
import pandas as pd
import pytest
from case_tables import lesion_table

from nnunetv2_hlfd.evaluation.analysis import dsc_by_tumour_size, dsc_by_volume_tercile, lesion_counts, undefined_values


def test_terciles_average_dsc_over_the_thirds_sorted_by_volume():
    volumes = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0]
    dsc_values = [0.55, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6]  # DSC = volume / 10 +- 0.05
    table = dsc_by_volume_tercile(volumes, dsc_values).set_index("tercile")
    assert table.loc["small", "mean_dsc"] == pytest.approx((0.1 + 0.2 + 0.3) / 3)
    assert table.loc["medium", "mean_dsc"] == pytest.approx((0.4 + 0.55 + 0.6) / 3)
    assert table.loc["large", "mean_dsc"] == pytest.approx((0.7 + 0.8 + 0.9) / 3)
    assert table.loc["medium", ["volume_min_ml", "volume_max_ml"]].tolist() == [4.0, 6.0]


def test_terciles_leave_out_cases_without_reference_tumour():
    table = dsc_by_volume_tercile([0.0, 1.0, 2.0, 3.0], [float("nan"), 0.1, 0.2, 0.3])
    assert table["n_cases"].tolist() == [1, 1, 1]


def test_terciles_of_an_uneven_count_give_the_extra_case_to_the_smaller_volumes():
    table = dsc_by_volume_tercile([1, 2, 3, 4, 5, 6, 7], [0.5] * 7)
    assert table["n_cases"].tolist() == [3, 2, 2]


def test_terciles_average_dsc_without_the_nan_cases():
    table = dsc_by_volume_tercile([1, 2, 3, 4, 5, 6], [0.2, float("nan"), 0.5, 0.5, 0.7, 0.9])
    assert table.loc[0, "mean_dsc"] == pytest.approx(0.2)
    assert table.loc[0, "n_valid"] == 1


def tumour_table(volumes, dsc_by_trainer) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "trainer": trainer,
                "fold": 0,
                "case": f"case{i}",
                "class": "tumor",
                "reference_volume_ml": volume,
                "dsc": value,
            }
            for trainer, values in dsc_by_trainer.items()
            for i, (volume, value) in enumerate(zip(volumes, values))
        ]
    )


def test_tumour_size_terciles_use_the_same_cases_for_every_trainer():
    volumes = [6.0, 1.0, 0.0, 4.0, 2.0, 5.0, 3.0]  # the tumour-free case drops out
    terciles = dsc_by_tumour_size(tumour_table(volumes, {"a": np.arange(7) / 10, "b": np.ones(7)}), "tumor")
    a, b = (terciles[terciles["trainer"] == t].set_index("tercile") for t in ("a", "b"))
    assert a["volume_max_ml"].tolist() == b["volume_max_ml"].tolist() == [2.0, 4.0, 6.0]
    # small: volumes 1 and 2 are cases 1 and 4
    assert a.loc["small", "mean_dsc"] == pytest.approx((0.1 + 0.4) / 2)
    assert b["mean_dsc"].tolist() == [1.0, 1.0, 1.0]


def test_tumour_size_terciles_need_three_tumour_cases():
    assert dsc_by_tumour_size(tumour_table([1.0, 0.0, 2.0], {"a": [0.5, 0.5, 0.5]}), "tumor") is None


def test_lesions_are_also_pooled_over_cases_with_false_positives_per_case():
    row = lesion_counts(lesion_table()).iloc[0]
    assert (row["tp"], row["fn"], row["fp"], row["n_cases"]) == (2, 1, 2, 3)
    assert row["fp_per_case"] == pytest.approx(2 / 3)
    assert (row["sensitivity"], row["precision"]) == pytest.approx((2 / 3, 2 / 4))


def test_the_cases_each_trainer_lost_to_nan_are_named():
    lost = undefined_values(lesion_table(), ["dsc"]).iloc[0]
    assert (lost["n_undefined"], lost["n_cases"], lost["cases"]) == (1, 3, "fold 1 c3")
