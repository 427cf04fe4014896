"""`nnunetv2_hlfd`: the project's command line. Training and prediction are nnU-Net's own
commands (nnUNetv2_train / nnUNetv2_predict); this adds what nnU-Net has no command for."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import traceback
from pathlib import Path

from nnunetv2_hlfd.demo import DEMO_EPOCHS, DEMO_ITERATIONS, DEMO_TEACHER_EPOCHS
from nnunetv2_hlfd.evaluation import command as benchmark
from nnunetv2_hlfd.evaluation.deployment import command as deployment
from nnunetv2_hlfd.speed import command as speed
from nnunetv2_hlfd.study import command as study
from nnunetv2_hlfd.utilities.interrupts import INTERRUPTED_STATUS, terminate_as_interrupt
from nnunetv2_hlfd.utilities.library_noise import quiet_library_noise
from nnunetv2_hlfd.utilities.problems import UserFacingError

REFUSED = 2  # the exit status of every refused input, as argparse's own for bad options
FAILED = 1  # the exit status of an unexpected error, as Python's own for an uncaught exception
FILE_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)
NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
REPORT_A_BUG = "report this as a bug of nnunetv2_hlfd, with the traceback above"


def _add_demo(subparsers) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="a one-fold study on a generated kidney CT dataset: teacher, student "
        "w/o KD and HLFD student, with Dice, parameters and inference time",
    )
    demo.add_argument(
        "--workdir",
        type=Path,
        default=Path("hlfd_demo"),
        help="folder for the demo's own nnUNet_raw/preprocessed/results (default: ./hlfd_demo); "
        "rerunning the same demo there continues it",
    )
    demo.add_argument("--cases", type=int, default=16, help="training cases to generate (default 16)")
    demo.add_argument(
        "--shape",
        type=int,
        nargs=3,
        default=(16, 64, 64),
        metavar=("Z", "Y", "X"),
        help="voxels per case (default 16 64 64); larger for a GPU, e.g. 48 256 256",
    )
    demo.add_argument(
        "--preset",
        default="default",
        choices=("default", "study"),
        help="synthetic data: default, or study (harder tumours, see docs/RESULTS.md)",
    )
    demo.add_argument("--configuration", default="2d", choices=("2d", "3d_fullres"))
    demo.add_argument("--epochs", type=int, default=DEMO_EPOCHS, help="epochs per student (default %(default)s)")
    demo.add_argument(
        "--teacher-epochs",
        type=int,
        default=DEMO_TEACHER_EPOCHS,
        help="epochs of the teacher, on its own schedule (default %(default)s)",
    )
    demo.add_argument(
        "--seed", type=int, default=0, help="seed of the generated data and of every training (default %(default)s)"
    )
    demo.add_argument(
        "--iterations", type=int, default=DEMO_ITERATIONS, help="training iterations per epoch (default %(default)s)"
    )
    demo.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    demo.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the --workdir of an earlier demo first (only a folder the demo made)",
    )


def _run_demo(args) -> None:
    from nnunetv2_hlfd.demo import DemoSettings, run_demo

    try:
        run_demo(
            DemoSettings(
                workdir=args.workdir,
                num_cases=args.cases,
                shape=tuple(args.shape),
                preset=args.preset,
                configuration=args.configuration,
                epochs=args.epochs,
                iterations_per_epoch=args.iterations,
                teacher_epochs=args.teacher_epochs,
                seed=args.seed,
                device=args.device,
                overwrite=args.overwrite,
            ),
            command=shlex.join(["nnunetv2_hlfd", *sys.argv[1:]]),
        )
    except KeyboardInterrupt:
        raise SystemExit(f"nnunetv2_hlfd demo: {study.INTERRUPTED}") from None


def _add_export(subparsers) -> None:
    export = subparsers.add_parser(
        "export",
        help="write a trained student as TorchScript (model.pt) and ONNX (model.onnx) and check both against PyTorch",
    )
    export.add_argument(
        "fold_folder",
        type=Path,
        help="the student's results fold folder, e.g. "
        "$nnUNet_results/Dataset001_X/nnUNetTrainerHLFD__nnUNetPlans__2d/fold_0",
    )
    export.add_argument("-o", "--output", type=Path, required=True, help="folder for model.pt and model.onnx")
    export.add_argument("--checkpoint", default="checkpoint_final.pth", help="checkpoint file in the fold folder")
    export.add_argument("--overwrite", action="store_true", help="replace existing model.pt / model.onnx")


def _run_export(args) -> None:
    from nnunetv2_hlfd.models.export import run

    run(args)


def _add_trainers_path(subparsers) -> None:
    subparsers.add_parser(
        "trainers-path",
        help="print the folder of the installed HLFD trainers, for "
        "export nnUNet_extTrainer=$(nnunetv2_hlfd trainers-path)",
    )


def _run_trainers_path(args) -> None:
    from nnunetv2_hlfd.utilities.trainer_search import trainers_folder

    print(trainers_folder())


# Each command's options come from a module without heavy imports, so `--help` stays fast;
# torch and nnU-Net are imported only by the command that runs.
COMMANDS = {
    "demo": (_add_demo, _run_demo),
    "speed": (speed.add_parser, speed.run),
    "export": (_add_export, _run_export),
    "benchmark": (benchmark.add_parser, benchmark.run),
    "deployment": (deployment.add_parser, deployment.run),
    "trainers-path": (_add_trainers_path, _run_trainers_path),
    "study": (study.add_parser, study.run),
}


def named_paths(args: argparse.Namespace) -> list[Path]:
    """The paths the user named: the command's path options, and nnU-Net's folders from the environment."""
    values = [v for value in vars(args).values() for v in (value if isinstance(value, (list, tuple)) else [value])]
    named = [Path(value) for value in values if isinstance(value, Path)]
    named += [Path(os.environ[name]) for name in NNUNET_FOLDERS if os.environ.get(name)]
    return [path.absolute() for path in named]


def is_users_file_error(error: OSError, args: argparse.Namespace) -> bool:
    """A file error of a path the user named, or one this package raised with its own message (no filename)."""
    if error.filename is None:
        return True
    if not isinstance(error.filename, (str, bytes, os.PathLike)):  # a file descriptor: not a path named
        return False
    path = Path(os.fsdecode(error.filename)).absolute()
    return any(path == named or named in path.parents for named in named_paths(args))


def main(argv=None) -> None:
    quiet_library_noise()
    parser = argparse.ArgumentParser(prog="nnunetv2_hlfd", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(subparsers)
    args = parser.parse_args(argv)
    prog = f"nnunetv2_hlfd {args.command}"
    try:
        with terminate_as_interrupt():
            COMMANDS[args.command][1](args)
    except KeyboardInterrupt:  # Ctrl-C or a kill: what the command had staged was removed on the way out
        parser.exit(INTERRUPTED_STATUS, f"{prog}: interrupted; no output was half written\n")
    except UserFacingError as refusal:  # a refusal of the inputs: its message, no traceback
        parser.exit(REFUSED, f"{prog}: error: {refusal}\n")
    except FILE_ERRORS as error:
        if not is_users_file_error(error, args):
            exit_as_bug(parser, prog)
        parser.exit(REFUSED, f"{prog}: error: {error}\n")
    except Exception:
        exit_as_bug(parser, prog)


def exit_as_bug(parser: argparse.ArgumentParser, prog: str) -> None:
    """Anything but a refusal is a bug (ours, or of a library we call): its traceback, and where it goes."""
    traceback.print_exc()
    parser.exit(FAILED, f"{prog}: unexpected error; {REPORT_A_BUG}\n")


if __name__ == "__main__":
    main()
