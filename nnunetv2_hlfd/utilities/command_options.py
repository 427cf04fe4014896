"""Options every command over a trained nnU-Net dataset shares, spelled once (stdlib only: `--help` stays fast)."""

from __future__ import annotations


def add_dataset_and_configuration(parser) -> None:
    """-d DATASET and -c CONFIGURATION, as nnU-Net's own commands name them."""
    parser.add_argument("-d", "--dataset", required=True, help="dataset name or id")
    parser.add_argument("-c", "--configuration", required=True, help="e.g. 2d or 3d_fullres")
