"""The command line every converter shares: options, exit status, and binding a DatasetSpec to its commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from nnunetv2.configuration import default_num_processes
from nnunetv2_hlfd.dataset_conversion.conversion import convert
from nnunetv2_hlfd.dataset_conversion.dataset_spec import DatasetSpec
from nnunetv2_hlfd.dataset_conversion.label_layouts import CYST_CHOICES

from nnunetv2_hlfd.utilities.interrupts import INTERRUPTED_STATUS, terminate_as_interrupt
from nnunetv2_hlfd.utilities.problems import ProblemListError


def build_parser(spec: DatasetSpec, prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
    """The options every converter shares; --cysts only where the dataset has cysts."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("input_folder", type=Path, help=f"the extracted {spec.name} data: {spec.layout}")
    parser.add_argument(
        "--nnunet-raw",
        type=Path,
        default=None,
        help="nnU-Net raw data folder (default: the nnUNet_raw environment variable)",
    )
    parser.add_argument(
        "-d", "--dataset-id", type=int, default=spec.dataset_id, help=f"nnU-Net dataset id (default: {spec.dataset_id})"
    )
    parser.add_argument("-n", "--name", default=spec.name, help=f"dataset name (default: {spec.name})")
    parser.add_argument(
        "--labels",
        choices=spec.label_layouts,
        default="full",
        help="full: organ + tumour [+ cyst]; tumour: tumour against everything else"
        + ("; regions: nnU-Net's KiTS23 regions (kidney, masses, tumor)" if "regions" in spec.label_layouts else "")
        + " (default: full)",
    )
    if spec.has_cysts:
        parser.add_argument(
            "--cysts",
            choices=CYST_CHOICES,
            default=None,
            help="keep cysts as their own label, merge them into kidney, or drop them to "
            "background; required with --labels full and --labels tumour (there 'keep' "
            "writes them as label 2, 'kidney' and 'drop' as background)"
            + ("; optional with --labels regions, which keeps them" if "regions" in spec.label_layouts else ""),
        )
    parser.add_argument(
        "-np",
        "--num-processes",
        type=int,
        default=default_num_processes,
        help=f"worker processes (default: {default_num_processes})",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing target dataset")
    parser.add_argument("--check", action="store_true", help="report every problem and write nothing")
    return parser


def cli_main(
    spec: DatasetSpec, argv: Sequence[str] | None = None, prog: str | None = None, description: str | None = None
) -> int:
    """Parse, convert, report. Returns the exit status: 0 done (or --check clean), 1 on problems, 130 interrupted."""
    args = build_parser(spec, prog, description).parse_args(argv)
    try:
        with terminate_as_interrupt():
            result = convert(
                spec,
                args.input_folder,
                args.nnunet_raw,
                args.dataset_id,
                args.name,
                labels=args.labels,
                cysts=getattr(args, "cysts", None),
                overwrite=args.overwrite,
                check=args.check,
                num_processes=args.num_processes,
            )
    except ProblemListError as exc:  # ConversionError, or the raw-dataset writer's RawDatasetError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # the unfinished dataset folder was removed on the way out (atomically_written)
        print(
            f"\n{prog or 'conversion'}: interrupted; nothing was written (rerun the same command to convert)",
            file=sys.stderr,
        )
        return INTERRUPTED_STATUS
    if not args.check:
        print(f"wrote {result}")
        return 0
    for problem in result:
        print(problem)
    print(f"{len(result)} problem(s) found" if result else f"{args.input_folder}: no problems found")
    return 1 if result else 0


def entry_points(spec: DatasetSpec, prog: str, description: str | None) -> tuple[Callable, Callable[..., int]]:
    """A dataset script's converter, `convert` bound to its spec, and its console command `prog`."""
    return partial(convert, spec), partial(cli_main, spec, prog=prog, description=description)
