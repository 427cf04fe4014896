"""Trainers at a study's length: nnU-Net's own variant idiom (`nnUNetTrainer_5epochs`) for any trainer.

nnU-Net takes the training length from the trainer class alone, so a shortened study trains
`<trainer>_<E>epochs_<I>iterations` subclasses. The study declares them in a module it writes into its
own folder and puts on nnUNet_extTrainer, so `nnUNetv2_train`, `nnUNetv2_predict` and the benchmark
find them by name like any trainer. On the CPU they use as many torch threads as the process has
cores: the study pins each worker to its cores, and nnUNetv2_train alone would take every core.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from nnunetv2_hlfd.environment import temporary_environment
from nnunetv2_hlfd.study.grid import variant_name
from nnunetv2_hlfd.trainer_search import find_trainer_class

MODULE_NAME = "hlfd_study_length_variants.py"


def process_cores() -> int:
    """Cores this process may run on (its affinity), not the machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def length_variant(
    base: type,
    epochs: int,
    iterations: int,
    name: str | None = None,
    val_iterations: int | None = None,
    save_every: int | None = None,
    threads_from_cores: bool = True,
) -> type:
    """`base` trained for `epochs` of `iterations` (validation: a fifth as many unless given), named
    `<base>_<E>epochs_<I>iterations` unless `name` says otherwise (the tests' `_tiny` trainers); on the CPU
    with as many torch threads as the process has cores unless `threads_from_cores` is False."""

    # nnU-Net records __init__'s arguments by name (checkpoints, DDP), so the signature must be the base's
    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),
    ):  # noqa: B008 (nnU-Net's own default)
        base.__init__(self, plans, configuration, fold, dataset_json, device)
        self.num_epochs = epochs
        self.num_iterations_per_epoch = iterations
        self.num_val_iterations_per_epoch = val_iterations or max(1, iterations // 5)
        if save_every is not None:
            self.save_every = save_every
        if threads_from_cores and self.device.type == "cpu":
            torch.set_num_threads(process_cores())

    name = name or variant_name(base.__name__, epochs, iterations)
    doc = f"{base.__name__} trained for {epochs} epochs of {iterations} iterations."
    return type(name, (base,), {"__init__": __init__, "__doc__": doc})


def declare_length_variants(trainers: list[str], epochs: int, iterations: int, own_folder: Path) -> dict[str, type]:
    """The variants of `trainers`, their bases looked up without `own_folder` (the module declaring them)."""
    own = Path(own_folder).resolve()
    others = [p for p in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p and Path(p).resolve() != own]
    with temporary_environment(nnUNet_extTrainer=os.pathsep.join(others)):
        bases = [find_trainer_class(name) for name in trainers]
    variants = [length_variant(base, epochs, iterations) for base in bases]
    return {variant.__name__: variant for variant in variants}


def write_variants_module(folder: Path, trainers: list[str], epochs: int, iterations: int) -> Path:
    """The module nnU-Net imports from nnUNet_extTrainer; rewritten only when its content changes."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MODULE_NAME
    text = (
        f'"""Written by `nnunetv2_hlfd study`: its trainers at {epochs} epochs of {iterations} iterations."""\n'
        "from pathlib import Path\n\n"
        "from nnunetv2_hlfd.study.length import declare_length_variants\n\n"
        f"globals().update(declare_length_variants({list(trainers)!r}, {epochs}, {iterations}, "
        "Path(__file__).parent))\n"
    )
    if not path.is_file() or path.read_text() != text:
        partial = path.with_suffix(".partial")
        partial.write_text(text)
        os.replace(partial, path)
    return path
