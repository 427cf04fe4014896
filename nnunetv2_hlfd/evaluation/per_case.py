"""The per-case table: one row per trainer, fold, case and class (`ID_COLUMNS`) and one numeric column per metric
(as `metrics.evaluate_case` names them: dsc, rvd, hd95, ...), NaN where a value is undefined for that case; its
rows, its checks, its long format and its files (CSV, JSON)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd
from nnunetv2.evaluation.evaluate_predictions import label_or_region_to_key

from nnunetv2_hlfd.utilities.problems import first_and_more

ID_COLUMNS = ("trainer", "fold", "case", "class")
MAX_NAMED_CASES = 20  # a problem names this many cases, then how many more: a message stays readable


def per_case_rows(
    trainer: str,
    fold: int | str,
    case: str,
    case_metrics: Mapping[int | tuple[int, ...], Mapping[str, float]],
    class_names: Mapping[int | tuple[int, ...], str] | None = None,
) -> list[dict]:
    """Rows of the per-case table from one `evaluate_case` result.

    The class column holds `class_names[label_or_region]`, or nnU-Net's own key for it
    ("1", "(1, 2)") when no name is given.
    """

    def class_name(region):
        return class_names[region] if class_names else label_or_region_to_key(region)

    return [
        {"trainer": trainer, "fold": fold, "case": case, "class": class_name(region), **values}
        for region, values in case_metrics.items()
    ]


def per_case_table(rows: Iterable[Mapping]) -> pd.DataFrame:
    """The per-case table from rows such as `per_case_rows` gives, checked."""
    table = pd.DataFrame(list(rows))
    check_per_case_table(table)
    return table


def metric_columns(table: pd.DataFrame) -> list[str]:
    """Every numeric column that is not an identifier."""
    return [
        column for column in table.columns if column not in ID_COLUMNS and pd.api.types.is_numeric_dtype(table[column])
    ]


def check_per_case_table(table: pd.DataFrame) -> None:
    missing = [column for column in ID_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"per-case table lacks the columns {missing}; it has {list(table.columns)}")
    duplicated = table[table.duplicated(list(ID_COLUMNS), keep=False)]
    if not duplicated.empty:
        raise ValueError(
            "per-case table has several rows for: " + name_rows(duplicated[list(ID_COLUMNS)].drop_duplicates())
        )


def name_rows(keys: pd.DataFrame) -> str:
    named = ["[" + "; ".join(f"{column} {value}" for column, value in row.items()) + "]" for _, row in keys.iterrows()]
    return first_and_more(named, MAX_NAMED_CASES)


def long_format(table: pd.DataFrame, metrics: Sequence[str] | None) -> pd.DataFrame:
    check_per_case_table(table)
    metrics = list(metrics) if metrics is not None else metric_columns(table)
    long = table.melt(id_vars=list(ID_COLUMNS), value_vars=metrics, var_name="metric", value_name="value")
    long["value"] = long["value"].astype(float)
    return long


def write_per_case_csv(table: pd.DataFrame, path: str | Path) -> Path:
    """Every per-case value as CSV; undefined values are empty cells."""
    path = Path(path)
    table.to_csv(path, index=False)
    return path


def write_per_case_json(table: pd.DataFrame, path: str | Path) -> Path:
    """Every per-case value as a JSON list of row objects; undefined values are null."""
    path = Path(path)
    path.write_text(table.to_json(orient="records", indent=2))
    return path
