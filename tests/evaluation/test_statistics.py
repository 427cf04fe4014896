"""Aggregates and comparisons with the reference trainer on constructed per-case tables."""

import math

import numpy as np
import pandas as pd
import pytest
from case_tables import table_of

from nnunetv2_hlfd.evaluation.paired_tests import bootstrap_mean_ci
from nnunetv2_hlfd.evaluation.statistics import (
    UnpairedCasesError,
    across_fold_summary,
    compare_to_reference,
    per_fold_summary,
)
from nnunetv2_hlfd.evaluation.tables import TableColumn, render_markdown_table


def summary_row(frame, **keys):
    selected = frame
    for column, value in keys.items():
        selected = selected[selected[column] == value]
    assert len(selected) == 1
    return selected.iloc[0]


# --- aggregates ---------------------------------------------------------------------


def test_per_fold_summary_skips_nan_and_counts_valid_cases():
    table = table_of({"A": [0.6, 0.8, float("nan"), 0.5]}, folds=[0, 0, 0, 1])
    fold0 = summary_row(per_fold_summary(table), fold=0)
    assert fold0["mean"] == pytest.approx(0.7)
    assert fold0["std"] == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert (fold0["n_valid"], fold0["n_cases"]) == (2, 3)


def test_across_fold_summary_gives_mean_and_std_of_fold_means():
    table = table_of({"A": [0.9, 0.7, 0.6, 0.6]}, folds=[0, 0, 1, 1])
    row = summary_row(across_fold_summary(table), trainer="A")
    assert row["fold_mean"] == pytest.approx((0.8 + 0.6) / 2)
    assert row["fold_std"] == pytest.approx(np.std([0.8, 0.6], ddof=1))
    assert row["n_folds"] == 2


def test_across_fold_case_mean_weights_every_case_not_every_fold():
    table = table_of({"A": [1.0, 1.0, 1.0, 0.0]}, folds=[0, 0, 0, 1])
    row = summary_row(across_fold_summary(table), trainer="A")
    assert row["case_mean"] == pytest.approx(3 / 4)
    assert row["fold_mean"] == pytest.approx((1.0 + 0.0) / 2)


def test_summary_covers_every_numeric_metric_column():
    table = table_of({"A": [0.5, 0.7]})
    table["hd95"] = [2.0, 4.0]
    summary = across_fold_summary(table)
    assert summary_row(summary, metric="hd95")["case_mean"] == pytest.approx(3.0)


# --- comparisons with the reference ----------------------------------------------------

REFERENCE_DSC = [0.62, 0.71, 0.55, 0.80, 0.67, 0.74, 0.59, 0.83, 0.69, 0.77]


def test_uniformly_better_trainer_has_the_exact_smallest_two_sided_p():
    better = [v + 0.03 + 0.001 * i for i, v in enumerate(REFERENCE_DSC)]
    result = compare_to_reference(table_of({"ref": REFERENCE_DSC, "hlfd": better}), "ref")
    # All 10 differences positive: the exact two-sided p is 2 / 2**10.
    assert result.loc[0, "p_value"] == pytest.approx(2 / 2**10)


def test_identical_trainers_have_p_one_and_no_effect():
    result = compare_to_reference(table_of({"ref": REFERENCE_DSC, "copy": REFERENCE_DSC}), "ref")
    row = result.iloc[0]
    assert (row["p_value"], row["rank_biserial"], row["median_difference"]) == (1.0, 0.0, 0.0)


def test_worse_trainer_has_negative_effect_sizes():
    worse = [v - 0.05 for v in REFERENCE_DSC]
    row = compare_to_reference(table_of({"ref": REFERENCE_DSC, "kd": worse}), "ref").iloc[0]
    assert row["rank_biserial"] == pytest.approx(-1.0)
    assert row["median_difference"] == pytest.approx(-0.05)


def test_pairs_with_a_nan_value_are_left_out():
    with_nan = list(REFERENCE_DSC)
    with_nan[3] = float("nan")
    row = compare_to_reference(table_of({"ref": REFERENCE_DSC, "kd": with_nan}), "ref").iloc[0]
    assert row["n_pairs"] == len(REFERENCE_DSC) - 1


def test_values_pair_by_fold_and_case_not_by_row_order():
    shifted = [v + 0.1 for v in REFERENCE_DSC]
    table = table_of({"ref": REFERENCE_DSC, "kd": shifted})
    shuffled = table.sample(frac=1.0, random_state=0).reset_index(drop=True)
    row = compare_to_reference(shuffled, "ref").iloc[0]
    assert row["median_difference"] == pytest.approx(0.1)
    assert row["rank_biserial"] == pytest.approx(1.0)


def test_holm_correction_spans_every_trainer_compared():
    better = [v + 0.02 * (i + 1) for i, v in enumerate(REFERENCE_DSC)]
    table = table_of({"ref": REFERENCE_DSC, "hlfd": better, "copy": REFERENCE_DSC})
    result = compare_to_reference(table, "ref").set_index("trainer")
    # Family of two: p = 2/1024 and 1 -> 2 * 2/1024 and max(that, 1 * 1).
    assert result.loc["hlfd", "p_holm"] == pytest.approx(2 * 2 / 2**10)
    assert result.loc["copy", "p_holm"] == 1.0


def test_compare_names_the_cases_that_do_not_pair_up():
    table = table_of({"ref": REFERENCE_DSC, "kd": REFERENCE_DSC})
    table = table[~((table["trainer"] == "kd") & (table["case"] == "case_003"))]
    with pytest.raises(UnpairedCasesError, match="case_003"):
        compare_to_reference(table, "ref")


def test_compare_rejects_an_absent_reference_trainer():
    with pytest.raises(ValueError, match="'teacher' is not in the table"):
        compare_to_reference(table_of({"A": REFERENCE_DSC}), "teacher")


def test_duplicate_rows_of_one_case_are_rejected():
    table = table_of({"ref": REFERENCE_DSC, "kd": REFERENCE_DSC})
    doubled = pd.concat([table, table.iloc[[0]]])
    with pytest.raises(ValueError, match="several rows"):
        compare_to_reference(doubled, "ref")


# --- pairing: both empty, and what is dropped ------------------------------------------


def tumour_free_table(candidate_volumes_ml) -> pd.DataFrame:
    """Ten cases, the last four tumour-free: the reference model is perfect everywhere (NaN where
    both are empty, the nnunet convention); the candidate equals it, except that it invents a
    tumour (DSC 0) in the tumour-free cases with a predicted volume above 0."""
    rows = []
    for i in range(10):
        reference_volume = 0.0 if i >= 6 else 5.0
        for trainer, predicted in (("ref", reference_volume), ("kd", candidate_volumes_ml[i])):
            both_empty = reference_volume == 0 and predicted == 0
            dsc = math.nan if both_empty else (1.0 if predicted == reference_volume else 0.0)
            rows.append(
                {
                    "trainer": trainer,
                    "fold": 0,
                    "case": f"case_{i:03d}",
                    "class": "tumour",
                    "dsc": dsc,
                    "rvd": math.nan if reference_volume == 0 else predicted / reference_volume - 1,
                    "reference_volume_ml": reference_volume,
                    "predicted_volume_ml": predicted,
                }
            )
    return pd.DataFrame(rows)


def test_a_tumour_invented_in_a_tumour_free_case_counts_against_predicting_nothing():
    inventing = [5.0] * 6 + [0.5] * 4
    row = summary_row(compare_to_reference(tumour_free_table(inventing), "ref", ["dsc"]), metric="dsc")
    # all ten cases pair: the four inventions are differences 0 - 1, not dropped as 0 - NaN
    assert (row["n_cases"], row["n_pairs"], row["n_dropped"], row["n_nonzero"]) == (10, 10, 0, 4)
    assert row["rank_biserial"] == -1.0 and row["mean_difference"] == pytest.approx(-0.4)
    assert row["p_value"] == pytest.approx(2 / 2**4) == row["smallest_p"]


def test_correctly_empty_cases_pair_as_equal():
    row = summary_row(compare_to_reference(tumour_free_table([5.0] * 6 + [0.0] * 4), "ref", ["dsc"]), metric="dsc")
    assert (row["n_pairs"], row["n_nonzero"], row["p_value"]) == (10, 0, 1.0)


def test_pairs_undefined_for_an_empty_reference_are_dropped_and_named():
    row = summary_row(compare_to_reference(tumour_free_table([5.0] * 6 + [0.5] * 4), "ref", ["rvd"]), metric="rvd")
    assert (row["n_cases"], row["n_pairs"], row["n_dropped"]) == (10, 6, 4)
    assert row["dropped"].startswith("4 rvd undefined: no reference tumour (fold 0 case_006, ")


# --- Holm families ----------------------------------------------------------------------


def two_class_table() -> pd.DataFrame:
    """Two trainers against "ref", better on every case in DSC and RVD of two classes."""
    frames = [
        table_of(
            {
                "ref": REFERENCE_DSC,
                "kd": [v + 0.01 * (i + 1) for i, v in enumerate(REFERENCE_DSC)],
                "hlfd": [v + 0.02 * (i + 1) for i, v in enumerate(REFERENCE_DSC)],
            },
            class_name=name,
        )
        for name in ("kidney", "tumour")
    ]
    table = pd.concat(frames, ignore_index=True)
    return table.assign(rvd=table["dsc"] - 1)


def test_the_primary_endpoint_is_a_holm_family_of_its_own():
    result = compare_to_reference(two_class_table(), "ref", ["dsc", "rvd"], primary_endpoint=("tumour", "dsc"))
    primary = result[result["family"] == "primary"]
    assert sorted(zip(primary["class"], primary["metric"])) == [("tumour", "dsc")] * 2
    assert (primary["family_size"] == 2).all()
    # both p = 2/1024 (every difference positive); Holm over the two primary tests only
    assert primary["p_holm"].tolist() == pytest.approx([2 * 2 / 2**10] * 2)
    secondary_rvd = result[result["family"] == "secondary: rvd"]
    assert len(secondary_rvd) == 4 and (secondary_rvd["family_size"] == 4).all()
    assert secondary_rvd["p_holm"].tolist() == pytest.approx([4 * 2 / 2**10] * 4)


TUMOUR_DSC = TableColumn("Tumour DSC", "tumour", "dsc")


def test_distances_show_median_and_quartiles_beside_the_mean():
    # one missed structure scores the image diagonal (752 mm): the mean follows it, the median does not
    table = table_of({"teacher": [2.0, 3.0, 4.0, 5.0, 752.0]}, metric="hd95")
    summary = across_fold_summary(table, ["hd95"])
    line = render_markdown_table(summary, [TableColumn("HD95", "tumour", "hd95", decimals=1)]).splitlines()[2]
    low, high = bootstrap_mean_ci([2.0, 3.0, 4.0, 5.0, 752.0])
    assert line == f"| teacher | 153.2 ± 334.7 [{low:.1f}, {high:.1f}]; median 4.0 [3.0, 5.0] (n=5) |"


def test_the_mean_over_cases_has_its_bootstrap_interval_in_summary_and_table():
    table = table_of({"teacher": list(np.linspace(0.6, 0.9, 40))})
    row = summary_row(across_fold_summary(table, ["dsc"]), trainer="teacher")
    assert (row["case_mean_ci_low"], row["case_mean_ci_high"]) == bootstrap_mean_ci(np.linspace(0.6, 0.9, 40))
    assert row["case_mean_ci_low"] < row["case_mean"] < row["case_mean_ci_high"]
    line = render_markdown_table(across_fold_summary(table, ["dsc"]), [TUMOUR_DSC]).splitlines()[2]
    assert line == (
        f"| teacher | 0.750 ± {row['case_std']:.3f} [{row['case_mean_ci_low']:.3f}, "
        f"{row['case_mean_ci_high']:.3f}] (n=40) |"
    )


# --- which Wilcoxon method ran, and how many trainings the cases come from ---------------


def test_comparisons_record_the_wilcoxon_method():
    comparisons = compare_to_reference(table_of({"ref": [0.5, 0.6, 0.7], "kd": [0.6, 0.8, 1.0]}), "ref")
    assert list(comparisons["method"]) == ["exact"]


def test_comparisons_from_fewer_than_five_trainings_say_so_beside_the_p_value():
    values = {"ref": [0.5 + 0.01 * i for i in range(10)], "kd": [0.6 + 0.02 * i for i in range(10)]}
    few = compare_to_reference(table_of(values, folds=[0, 1] * 5), "ref").iloc[0]
    assert few["n_trainings"] == 2
    assert "cases from 2 training(s) per model, fewer than 5" in few["trainings_caveat"]
    five = compare_to_reference(table_of(values, folds=[0, 1, 2, 3, 4] * 2), "ref").iloc[0]
    assert five["n_trainings"] == 5 and five["trainings_caveat"] == ""
    summary = across_fold_summary(table_of(values, folds=[0, 1] * 5))
    column = TableColumn("Tumour DSC", "tumour", "dsc")
    cells = render_markdown_table(summary, [column], compare_to_reference(table_of(values, folds=[0, 1] * 5), "ref"))
    [kd_row] = [line for line in cells.splitlines() if line.startswith("| kd |")]
    assert "(2 training(s) per model: no spread over trainings)" in kd_row
