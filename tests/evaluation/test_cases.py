"""Scoring of the validation cases: the process count and the progress bar (no nnU-Net folders)."""

import argparse

from nnunetv2_hlfd.evaluation import cases
from nnunetv2_hlfd.evaluation.command import add_parser, settings_from_args


def parse(*argv: str):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["benchmark", "-d", "991", "-c", "2d", *argv])


def test_cases_are_scored_by_nnunets_default_process_count_capped_at_the_cpus(monkeypatch):
    monkeypatch.setattr("nnunetv2.configuration.default_num_processes", 8)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert cases.scoring_processes(None) == 2 and cases.scoring_processes(3) == 3
    assert settings_from_args(parse()).num_processes is None


def test_scoring_shows_a_progress_bar_of_the_cases(capsys):
    def one_row(job):
        return [{"trainer": "a", "fold": 0, "case": job, "class": "tumor", "dsc": 1.0}]

    table = cases.evaluate_cases(["c1", "c2", "c3"], one_row, num_processes=1)
    assert table["case"].tolist() == ["c1", "c2", "c3"]
    progress = capsys.readouterr().err
    assert "Scoring: 100%" in progress and "3/3" in progress
    assert "\r" not in progress and len(progress.splitlines()) >= 2  # not a terminal: lines, not redrawn frames
