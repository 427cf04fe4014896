"""The one Markdown table writer."""

from nnunetv2_hlfd.utilities.markdown import markdown_table


def test_a_table_has_its_header_a_rule_and_one_line_per_row():
    assert markdown_table(["trainer", "DSC"], [["teacher", 0.9], ["student", "n/a"]]) == (
        "| trainer | DSC |\n| --- | --- |\n| teacher | 0.9 |\n| student | n/a |"
    )


def test_a_table_without_rows_is_its_header():
    assert markdown_table(["a"], []) == "| a |\n| --- |"
