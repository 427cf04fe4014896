"""The `nnunetv2_hlfd study` command line; free of heavy imports so `--help` stays fast."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from nnunetv2_hlfd.evaluation.protocol import PROTOCOLS
from nnunetv2_hlfd.study.grid import ALL_FOLDS, DEFAULT_STUDENTS, DEFAULT_TEACHER, StudySettings
from nnunetv2_hlfd.utilities.command_options import add_dataset_and_configuration
from nnunetv2_hlfd.utilities.problems import UserFacingError

INTERRUPTED = (
    "interrupted; rerun the same command to continue: finished trainings are kept, started ones "
    "continue from their last checkpoint"
)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "study",
        help="train a teacher and its students over folds with nnUNetv2_train (in parallel, resumable, "
        "locally or on Slurm) and benchmark them",
    )
    add_dataset_and_configuration(parser)
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans of every training (default: %(default)s)")
    parser.add_argument("--teacher", default=DEFAULT_TEACHER, help="the teacher's trainer (default: %(default)s)")
    parser.add_argument(
        "--students",
        nargs="+",
        default=list(DEFAULT_STUDENTS),
        help="student trainers, distilled from the study's teacher (default: %(default)s)",
    )
    parser.add_argument("-f", "--folds", nargs="+", type=int, default=list(ALL_FOLDS), help="folds (default: all five)")
    parser.add_argument(
        "-device",
        "--device",
        default="cpu",
        choices=("cpu", "cuda"),
        help="nnUNetv2_train's -device (default: %(default)s)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="trainings at once on the CPU (default 1; on CUDA one per GPU)"
    )
    parser.add_argument(
        "--threads", type=int, help="CPU threads per training (default: the cores divided among the workers)"
    )
    parser.add_argument(
        "--gpus",
        type=int,
        nargs="+",
        help="GPU ids, one worker each; an id named N times runs N small trainings at once on that GPU "
        "(default: every GPU once)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help="shorten every student's training to this many epochs (with --iterations): the study trains "
        "STUDENT_<E>epochs_<I>iterations variants; default: the trainers' own length",
    )
    parser.add_argument("--iterations", type=int, help="training iterations per epoch of a shortened study")
    parser.add_argument(
        "--teacher-epochs",
        type=int,
        help="the teacher's own length, apart from the students' (with --teacher-iterations): it trains "
        "TEACHER_<E>epochs_<I>iterations[_seed<S>]; default: the teacher trainer's own length, unseeded, so a "
        "teacher you already trained (nnUNetTrainer__PLANS__CONF) is used as it is",
    )
    parser.add_argument("--teacher-iterations", type=int, help="training iterations per epoch of the teacher")
    repeats = parser.add_mutually_exclusive_group()
    repeats.add_argument(
        "--repeats",
        type=int,
        help="train each student K times per fold against the same teacher, seeds 0..K-1 (each repeat its own "
        "results folder, TRAINER_seed<S>); default: one unseeded run",
    )
    repeats.add_argument("--seeds", type=int, nargs="+", help="the repeats' seeds, instead of --repeats")
    parser.add_argument(
        "--protocol",
        choices=tuple(PROTOCOLS),
        default="standard",
        help="the benchmark's protocol; paper saves validation probabilities (--npz)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="study folder: logs, status.json, study.md, benchmark/ "
        "(default: nnUNet_results/DATASET/hlfd_study_CONFIGURATION)",
    )
    parser.add_argument(
        "--cluster",
        choices=("slurm", "local"),
        help="submit each training as a submitit job: slurm (afterok dependencies), or local "
        "(submitit's local executor); default: this machine's --workers",
    )
    parser.add_argument("--slurm-partition", help="Slurm partition of the jobs")
    parser.add_argument(
        "--slurm-time", type=int, default=24 * 60, help="time limit per job in minutes (default: %(default)s)"
    )
    parser.add_argument(
        "--no-benchmark", dest="benchmark", action="store_false", help="train only; run `nnunetv2_hlfd benchmark` later"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: write study.md, runs.csv and the learning curves of the runs finished so far",
    )
    parser.add_argument(
        "--benchmark-args",
        nargs=argparse.REMAINDER,
        default=[],
        help="everything after this goes to `nnunetv2_hlfd benchmark` (e.g. --no-speed)",
    )


def settings_from_args(args: argparse.Namespace) -> StudySettings:
    return StudySettings(
        dataset=str(args.dataset),
        configuration=args.configuration,
        plans=args.plans,
        teacher=args.teacher,
        students=tuple(args.students),
        folds=tuple(args.folds),
        device=args.device,
        workers=args.workers,
        threads=args.threads,
        gpus=tuple(args.gpus) if args.gpus else None,
        epochs=args.epochs,
        iterations=args.iterations,
        teacher_epochs=args.teacher_epochs,
        teacher_iterations=args.teacher_iterations,
        seeds=repeat_seeds(args.repeats, args.seeds),
        protocol=args.protocol,
        output=args.output,
        cluster=args.cluster,
        slurm_partition=args.slurm_partition,
        slurm_time_min=args.slurm_time,
        benchmark=args.benchmark,
        report_only=args.report_only,
        benchmark_args=tuple(args.benchmark_args),
    )


def repeat_seeds(repeats: int | None, seeds: list[int] | None) -> tuple[int, ...] | None:
    if repeats is not None and repeats < 1:
        raise UserFacingError(f"--repeats must be at least 1, got {repeats}")
    return tuple(seeds) if seeds else tuple(range(repeats)) if repeats else None


def run(args: argparse.Namespace) -> None:
    from nnunetv2_hlfd.study.runner import run_study

    try:
        study = run_study(settings_from_args(args), command=shlex.join(["nnunetv2_hlfd", *sys.argv[1:]]))
    except KeyboardInterrupt:
        raise SystemExit(INTERRUPTED) from None
    print(f"study written to {study.study_md}")
