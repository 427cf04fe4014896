"""The `nnunetv2_hlfd deployment` command line: its options, read into settings.DeploymentSettings.

Kept free of heavy imports (torch, nnU-Net) so `nnunetv2_hlfd --help` stays fast; `run` imports
the comparison itself (`comparison.py`). docs/EVALUATION.md describes the command.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from nnunetv2_hlfd.evaluation.settings import (
    ALL_FOLDS,
    DEFAULT_PLANS,
    DEFAULT_REPETITIONS,
    DEFAULT_STUDENT,
    DEFAULT_STUDENT_FOLD,
    DEFAULT_TEACHER,
    DEVICES,
    DeploymentSettings,
)
from nnunetv2_hlfd.utilities.command_options import add_dataset_and_configuration
from nnunetv2_hlfd.utilities.problems import UserFacingError


def fold(value: str) -> int | str:
    """A fold as nnUNetv2_train names it: a number, or `all`."""
    if value == "all":
        return value
    if value.isdigit():
        return int(value)
    raise argparse.ArgumentTypeError(f"{value!r} is not a fold: give a number (0, 1, ...) or all")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "deployment",
        help="compare, on a held-out labelled test set, the teacher's fold ensemble with mirroring and the "
        "student with and without mirroring: DSC, latency and peak memory per volume (docs/EVALUATION.md)",
    )
    add_dataset_and_configuration(parser)
    parser.add_argument(
        "-i",
        "--test-images",
        dest="test_images",
        type=Path,
        required=True,
        help="folder of held-out test images, named as nnU-Net names them (<case>_0000<file_ending>); "
        "no model may have trained on these cases",
    )
    parser.add_argument(
        "-l",
        "--test-labels",
        dest="test_labels",
        type=Path,
        required=True,
        help="folder of their labels (<case><file_ending>)",
    )
    parser.add_argument("-p", "--plans", default=DEFAULT_PLANS, help="plans of both models (default: %(default)s)")
    parser.add_argument("--teacher", default=DEFAULT_TEACHER, help="the teacher's trainer (default: %(default)s)")
    parser.add_argument(
        "--teacher-folds",
        nargs="+",
        metavar="FOLD",
        type=fold,
        default=list(ALL_FOLDS),
        help="the folds of the teacher's ensemble, as nnUNetv2_predict -f (default: 0 1 2 3 4)",
    )
    parser.add_argument("--student", default=DEFAULT_STUDENT, help="the student's trainer (default: %(default)s)")
    parser.add_argument(
        "--student-fold",
        metavar="FOLD",
        type=fold,
        default=DEFAULT_STUDENT_FOLD,
        help="the student's fold (default: all, the deployment student distilled from the fold ensemble)",
    )
    parser.add_argument(
        "--device",
        choices=DEVICES,
        help="device to predict and time on (default: cuda where torch sees a GPU, else cpu)",
    )
    parser.add_argument(
        "--repetitions",
        type=int,
        default=DEFAULT_REPETITIONS,
        help="timed predictions of every test case per configuration, interleaved; the median is reported "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="output folder (default: nnUNet_results/DATASET/hlfd_deployment_CONFIGURATION)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the output folder of an earlier deployment comparison"
    )


def settings_from_args(args: argparse.Namespace) -> DeploymentSettings:
    if args.repetitions < 1:
        raise UserFacingError(f"--repetitions must be at least 1, got {args.repetitions}")
    if len(set(args.teacher_folds)) != len(args.teacher_folds):
        raise UserFacingError(f"--teacher-folds names a fold twice: {' '.join(map(str, args.teacher_folds))}")
    chosen = {field.name: getattr(args, field.name) for field in fields(DeploymentSettings)}
    return DeploymentSettings(**chosen | {"teacher_folds": tuple(args.teacher_folds)})


def run(args: argparse.Namespace) -> None:
    from nnunetv2_hlfd.evaluation.deployment.comparison import run_deployment

    run_deployment(settings_from_args(args))
