"""`nnunetv2_hlfd`: the project's command line. Training and prediction are nnU-Net's own
commands (nnUNetv2_train / nnUNetv2_predict); this adds what nnU-Net has no command for."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from nnunetv2_hlfd.demo import DEMO_EPOCHS, DEMO_ITERATIONS
from nnunetv2_hlfd.environment import UserFacingError
from nnunetv2_hlfd.evaluation import command as benchmark
from nnunetv2_hlfd.evaluation import deployment_command as deployment
from nnunetv2_hlfd.interrupts import INTERRUPTED_STATUS, terminate_as_interrupt
from nnunetv2_hlfd.speed import command as speed
from nnunetv2_hlfd.study import command as study

REFUSED = 2  # the exit status of every refused input, as argparse's own for bad options


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
    demo.add_argument("--epochs", type=int, default=DEMO_EPOCHS, help="epochs per model (default %(default)s)")
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
    from nnunetv2_hlfd.export import run

    run(args)


def _add_trainers_path(subparsers) -> None:
    subparsers.add_parser(
        "trainers-path",
        help="print the folder of the installed HLFD trainers, for "
        "export nnUNet_extTrainer=$(nnunetv2_hlfd trainers-path)",
    )


def _run_trainers_path(args) -> None:
    from nnunetv2_hlfd.trainer_search import trainers_folder

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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="nnunetv2_hlfd", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(subparsers)
    args = parser.parse_args(argv)
    try:
        with terminate_as_interrupt():
            COMMANDS[args.command][1](args)
    except KeyboardInterrupt:  # Ctrl-C or a kill: what the command had staged was removed on the way out
        parser.exit(INTERRUPTED_STATUS, f"nnunetv2_hlfd {args.command}: interrupted; no output was half written\n")
    except UserFacingError as refusal:  # a refusal of the inputs: its message, no traceback
        parser.exit(REFUSED, f"nnunetv2_hlfd {args.command}: {refusal}\n")
    except (FileExistsError, FileNotFoundError, ValueError, RuntimeError) as error:
        parser.exit(REFUSED, f"nnunetv2_hlfd {args.command}: error: {error}\n")


if __name__ == "__main__":
    main()
