"""The `nnunetv2_hlfd benchmark` command line: its options, read into settings.BenchmarkSettings.

Kept free of heavy imports (torch, MONAI, pandas) so `nnunetv2_hlfd --help` stays fast;
`run` imports the benchmark itself. docs/EVALUATION.md describes every option.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from nnunetv2_hlfd.evaluation.protocol import PROTOCOLS
from nnunetv2_hlfd.evaluation.settings import (
    ALL_FOLDS,
    DEFAULT_PLANS,
    DEFAULT_REFERENCE,
    DEFAULT_REPETITIONS,
    DEFAULT_TEACHER,
    DEFAULT_TOLERANCE_MM,
    DEFAULT_TRAINERS,
    DEFAULT_VOLUME_CASES,
    EMPTY_CONVENTIONS,
    PAPER_MASKS,
    BenchmarkSettings,
)
from nnunetv2_hlfd.utilities.command_options import add_dataset_and_configuration
from nnunetv2_hlfd.utilities.problems import UserFacingError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="score every trainer's validation predictions, test them against a reference "
        "trainer and report each model's size and speed (docs/EVALUATION.md)",
    )
    add_dataset_and_configuration(parser)
    parser.add_argument(
        "-tr",
        "--trainers",
        nargs="+",
        default=list(DEFAULT_TRAINERS),
        help="trainers to compare, TRAINER or TRAINER__PLANS (default: %(default)s)",
    )
    parser.add_argument(
        "-p", "--plans", default=DEFAULT_PLANS, help="plans of the trainers named without (default: %(default)s)"
    )
    parser.add_argument(
        "-f", "--folds", nargs="+", type=int, default=list(ALL_FOLDS), help="folds to score (default: all five)"
    )
    parser.add_argument(
        "--reference",
        default=DEFAULT_REFERENCE,
        help="trainer every other one is tested against (default: %(default)s, the student without distillation)",
    )
    parser.add_argument(
        "--teacher",
        default=DEFAULT_TEACHER,
        help="trainer the compression report relates cost and DSC to (default: %(default)s)",
    )
    parser.add_argument(
        "--protocol",
        choices=tuple(PROTOCOLS),
        default="standard",
        help="standard: every class, every metric; paper: the reference HLFD code's tumour "
        "DSC and RVD on tumour slices",
    )
    parser.add_argument(
        "--paper-masks",
        choices=PAPER_MASKS,
        default="auto",
        help="paper protocol, one rule for every model: probability: tumour probability > 0.4 "
        "of the saved <case>.npz (validation with --npz), as the reference code; argmax: "
        "the segmentations; auto: probability where every folder has them, argmax where "
        "none has, else refused (default: %(default)s)",
    )
    parser.add_argument(
        "--primary-endpoint",
        metavar="CLASS:METRIC",
        help="the comparison whose Holm family is its own, e.g. tumor:dsc (default: the tumour "
        "class's dsc, else the first class's); every other metric is a secondary family",
    )
    parser.add_argument(
        "--tumour-label",
        help="name or value of the tumour class (default: the class named tumor or tumour in dataset.json)",
    )
    parser.add_argument(
        "--tolerance-mm",
        type=float,
        default=DEFAULT_TOLERANCE_MM,
        help="surface Dice tolerance in mm (default: %(default)s)",
    )
    parser.add_argument(
        "--class-tolerance-mm",
        dest="class_tolerances_mm",
        nargs="+",
        metavar="CLASS=MM",
        help="surface Dice tolerance of named classes instead of --tolerance-mm, e.g. KiTS21's kidney=1.03 tumor=1.15",
    )
    parser.add_argument(
        "--empty-convention",
        choices=EMPTY_CONVENTIONS,
        default="nnunet",
        help="score of a class absent from both prediction and reference: nnunet NaN "
        "(left out of means), kits a perfect score (default: %(default)s)",
    )
    parser.add_argument(
        "--lesion-iou-threshold",
        type=float,
        help="IoU a predicted lesion needs to detect a reference lesion (default: any overlap)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, help="output folder (default: nnUNet_results/DATASET/hlfd_benchmark_CONFIGURATION)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument(
        "--run-missing-validation",
        action="store_true",
        help="run nnU-Net's validation (nnUNetv2_train ... --val) of folds without complete "
        "predictions instead of stopping",
    )
    parser.add_argument(
        "--no-speed",
        dest="speed",
        action="store_false",
        help="skip latency and peak memory (parameters and multiply-adds are always reported)",
    )
    parser.add_argument(
        "--repetitions",
        type=int,
        default=DEFAULT_REPETITIONS,
        help="timed runs per latency, the median is reported (default: %(default)s)",
    )
    parser.add_argument(
        "--volume-cases",
        type=int,
        default=DEFAULT_VOLUME_CASES,
        help="validation cases (the first of the first fold) whose whole-volume prediction is "
        "timed; the median over them is reported (default: %(default)s)",
    )
    parser.add_argument(
        "--device",
        dest="devices",
        nargs="+",
        choices=("cpu", "cuda"),
        help="devices to time on (default: cpu, and cuda where torch sees a GPU)",
    )
    parser.add_argument(
        "-np",
        "--num-processes",
        type=int,
        help="processes scoring cases in parallel (default: nnU-Net's default process count, "
        "nnUNet_def_n_proc, at most the CPUs available)",
    )


def settings_from_args(args: argparse.Namespace) -> BenchmarkSettings:
    for option, value, least in (
        ("--repetitions", args.repetitions, 1),
        ("--tolerance-mm", args.tolerance_mm, 0),
        ("--num-processes", args.num_processes, 1),
        ("--volume-cases", args.volume_cases, 1),
    ):
        if value is not None and value < least:
            raise UserFacingError(f"{option} must be at least {least}, got {value}")
    for option, values in (("--folds", args.folds), ("--trainers", args.trainers)):
        if len(set(values)) != len(values):
            raise UserFacingError(f"{option} names an entry twice: {' '.join(map(str, values))}")
    if args.lesion_iou_threshold is not None and not 0 < args.lesion_iou_threshold <= 1:
        raise UserFacingError(f"--lesion-iou-threshold must be above 0 and at most 1, got {args.lesion_iou_threshold}")
    chosen = {field.name: getattr(args, field.name) for field in fields(BenchmarkSettings)}
    as_tuples = ("trainers", "folds", "devices", "class_tolerances_mm")
    return BenchmarkSettings(
        **chosen
        | {name: tuple(chosen[name]) for name in as_tuples if chosen[name] is not None}
        | {"class_tolerances_mm": tuple(chosen["class_tolerances_mm"] or ())}
    )


def run(args: argparse.Namespace) -> None:
    from nnunetv2_hlfd.evaluation.benchmark import run_benchmark

    run_benchmark(settings_from_args(args))
