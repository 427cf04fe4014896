"""Per-case tables built from a few values, shared by the statistics tests."""

import math

import pandas as pd


def table_of(values_by_trainer, folds=None, metric="dsc", class_name="tumour"):
    """Per-case table: case i of every trainer gets values[i], in fold folds[i]."""
    n_cases = len(next(iter(values_by_trainer.values())))
    folds = folds if folds is not None else [0] * n_cases
    return pd.DataFrame(
        [
            {"trainer": trainer, "fold": folds[i], "case": f"case_{i:03d}", "class": class_name, metric: value}
            for trainer, values in values_by_trainer.items()
            for i, value in enumerate(values)
        ]
    )


def lesion_table() -> pd.DataFrame:
    """Trainer a on two cases: 2 of 3 reference lesions found, 4 predicted of which 2 match."""
    return pd.DataFrame(
        [
            {
                "trainer": "a",
                "fold": 0,
                "case": "c1",
                "class": "tumor",
                "dsc": 0.5,
                "lesion_n_reference": 2,
                "lesion_n_reference_detected": 2,
                "lesion_n_predicted": 3,
                "lesion_n_predicted_matched": 2,
                "reference_volume_ml": 3.0,
                "spacing_mm": "4x0.98x0.98",
            },
            {
                "trainer": "a",
                "fold": 0,
                "case": "c2",
                "class": "tumor",
                "dsc": 0.0,
                "lesion_n_reference": 1,
                "lesion_n_reference_detected": 0,
                "lesion_n_predicted": 1,
                "lesion_n_predicted_matched": 0,
                "reference_volume_ml": 1.0,
                "spacing_mm": "5x0.78x0.78",
            },
            {
                "trainer": "a",
                "fold": 1,
                "case": "c3",
                "class": "tumor",
                "dsc": math.nan,
                "lesion_n_reference": 0,
                "lesion_n_reference_detected": 0,
                "lesion_n_predicted": 0,
                "lesion_n_predicted_matched": 0,
                "reference_volume_ml": 0.0,
                "spacing_mm": "3x0.9x0.9",
            },
        ]
    )
