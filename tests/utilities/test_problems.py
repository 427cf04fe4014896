"""The user-facing error, the one problem-list error and the one 'first N and K more' formatter."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nnunetv2_hlfd.utilities.problems import ProblemListError, UserFacingError, first_and_more


def test_a_single_problem_is_the_whole_message():
    error = ProblemListError("the input folder does not exist; pass the extracted data")
    assert str(error) == "the input folder does not exist; pass the extracted data"
    assert error.problems == ["the input folder does not exist; pass the extracted data"]


def test_several_problems_get_a_counting_headline_and_one_line_each():
    error = ProblemListError(["case_1: label missing", "case_2: shapes differ"])
    assert str(error) == "2 problems:\n  - case_1: label missing\n  - case_2: shapes differ"


def test_a_given_headline_is_used_even_for_one_problem():
    error = ProblemListError(["case_1: label missing"], headline="refusing to write Dataset040_X:")
    assert str(error) == "refusing to write Dataset040_X:\n  - case_1: label missing"
    assert error.headline == "refusing to write Dataset040_X:"


def test_subclasses_are_caught_as_problem_lists():
    class DomainError(ProblemListError, ValueError):
        pass

    with pytest.raises(ProblemListError, match="bad"):
        raise DomainError("bad")


def test_a_problem_list_is_a_refusal_of_the_user_s_input():
    assert isinstance(ProblemListError("bad"), UserFacingError)


@pytest.mark.parametrize("caught_as", [ValueError, RuntimeError])
def test_a_refusal_is_caught_as_the_built_in_errors_refusals_raised_before_it(caught_as):
    with pytest.raises(caught_as, match="--repeats must be at least 1"):
        raise UserFacingError("--repeats must be at least 1, got 0")


def test_an_uncaught_refusal_prints_its_message_alone_and_exits_1():
    raising = (
        "from nnunetv2_hlfd.utilities.problems import UserFacingError; raise UserFacingError('-d names no dataset')"
    )
    result = subprocess.run([sys.executable, "-c", raising], capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stderr) == (1, "-d names no dataset\n")


@pytest.mark.parametrize(
    "names, expected",
    [
        ([], ""),
        (["a", "b"], "a, b"),
        (["a", "b", "c"], "a, b, c"),
        (["d", "c", "b", "a", "e"], "d, c, b and 2 more"),
    ],
)
def test_first_and_more_names_the_first_ones_in_order_and_counts_the_rest(names, expected):
    assert first_and_more(names, 3) == expected
