"""Speed verdicts: a ratio judged round by round, and how often two identical models would get one."""

import argparse

import numpy as np
import pytest

from nnunetv2_hlfd.evaluation.command import add_parser
from nnunetv2_hlfd.evaluation.settings import DEFAULT_REPETITIONS
from nnunetv2_hlfd.evaluation.timing import verdict


def parse(*argv: str):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["benchmark", "-d", "991", "-c", "2d", *argv])


@pytest.mark.parametrize(
    "baseline, seconds, text",
    [
        ([2.0, 2.1, 1.9, 2.0, 2.0, 2.0], [1.0] * 6, "2.00x faster (1.90-2.10)"),
        ([1.0] * 6, [2.0, 2.0, 2.5, 2.0, 2.0, 2.0], "2.00x slower (2.00-2.50)"),
        ([90.0, 56.0, 70.0] * 2, [56.0, 90.0, 70.0] * 2, "no difference (ratio 0.62-1.61 over 6 rounds)"),
        (
            [2.0, 2.1, 1.9],
            [1.0, 1.0, 1.0],
            "not judged (3 round(s): identical models would get a verdict 25% of the time; needs 6)",
        ),
    ],
)
def test_a_speed_ratio_whose_spread_covers_one_is_no_speed_up(baseline, seconds, text):
    assert verdict.speed_ratio(baseline, seconds) == text


def test_identical_models_get_a_speed_verdict_as_often_as_the_closed_form_says():
    rng = np.random.default_rng(0)
    for rounds in (3, 5, 6):
        trials = 4000
        times = rng.lognormal(0.0, 0.3, size=(trials, 2, rounds))  # two identical models, noisy rounds
        verdicts = np.mean([(ratio := a / b).min() > 1 or ratio.max() < 1 for a, b in times])
        assert verdicts == pytest.approx(verdict.false_verdict_rate(rounds), abs=0.02)


def test_the_default_rounds_keep_false_speed_verdicts_under_five_percent():
    assert verdict.false_verdict_rate(DEFAULT_REPETITIONS) < 0.05
    assert verdict.false_verdict_rate(DEFAULT_REPETITIONS - 1) >= 0.05
    assert parse().repetitions == DEFAULT_REPETITIONS
    assert "3.1% of the time" in verdict.verdict_note(DEFAULT_REPETITIONS)
