"""The per-case table: its rows, its checks and its files."""

import json

import pandas as pd
import pytest
from case_tables import table_of

from nnunetv2_hlfd.evaluation.per_case import per_case_rows, per_case_table, write_per_case_csv, write_per_case_json


def test_per_case_rows_name_regions_like_nnunet():
    rows = per_case_rows("kd", 0, "case_000", {1: {"dsc": 0.9}, (1, 2): {"dsc": 0.8}})
    assert [row["class"] for row in rows] == ["1", "(1, 2)"]


def test_per_case_rows_use_given_class_names():
    rows = per_case_rows("kd", 0, "case_000", {2: {"dsc": 0.5}}, {2: "tumour"})
    assert rows[0]["class"] == "tumour"


def test_json_writer_keeps_every_value_and_writes_nan_as_null(tmp_path):
    table = table_of({"A": [0.5, float("nan")]})
    records = json.loads(write_per_case_json(table, tmp_path / "cases.json").read_text())
    assert [r["dsc"] for r in records] == [0.5, None]
    assert records[0]["case"] == "case_000"


def test_csv_writer_round_trips_the_table(tmp_path):
    table = table_of({"A": [0.5, float("nan")], "B": [0.25, 0.75]})
    path = write_per_case_csv(table, tmp_path / "cases.csv")
    pd.testing.assert_frame_equal(pd.read_csv(path), table)


def test_per_case_table_rejects_rows_without_identifiers():
    with pytest.raises(ValueError, match="lacks the columns"):
        per_case_table([{"trainer": "A", "dsc": 0.5}])
